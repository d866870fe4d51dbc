#include "katsubushi/tls/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <array>
#include <cstdlib>

namespace katsubushi::tls {
namespace {

// Where distributions keep their CA bundle (the list Go's crypto/x509 probes
// on Linux): Debian/Ubuntu/Alpine, Fedora/RHEL/Amazon Linux, openSUSE,
// OpenELEC, CentOS/RHEL 7, Alpine.
constexpr std::array<const char*, 6> kSystemBundles = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
};

bool Exists(const char* path) {
  struct stat st {};
  return path != nullptr && ::stat(path, &st) == 0;
}

// OpenSSL's own defaults first; when this binary's compiled-in paths do not
// exist on this host (and no SSL_CERT_* variable names others), the first
// bundle of kSystemBundles that does.
bool LoadSystemStore(SSL_CTX* ctx, std::string* error) {
  if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    *error = DrainSslErrors("cannot load the system CA store");
    return false;
  }
  const char* env_file = std::getenv(X509_get_default_cert_file_env());
  const char* env_dir = std::getenv(X509_get_default_cert_dir_env());
  if (env_file != nullptr || env_dir != nullptr || Exists(X509_get_default_cert_file())) return true;
  for (const char* bundle : kSystemBundles) {
    if (!Exists(bundle)) continue;
    if (SSL_CTX_load_verify_locations(ctx, bundle, nullptr) != 1) {
      *error = SslFailure(std::string("cannot load the CA bundle ") + bundle);
      return false;
    }
    return true;
  }
  // Perhaps a hashed directory (OpenSSL's default dir) still has them; if not,
  // every handshake fails with "unable to get local issuer certificate".
  return true;
}

}  // namespace

std::string DrainSslErrors(std::string_view fallback) {
  std::string out;
  while (const unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out.append("; ");
    out.append(buf);
  }
  return out.empty() ? std::string(fallback) : out;
}

std::string SslFailure(std::string_view what) {
  const std::string why = DrainSslErrors("");
  return why.empty() ? std::string(what) : std::string(what) + ": " + why;
}

ClientContext MakeClientContext(const TlsClientOptions& options, std::string* error) {
  ERR_clear_error();
  ClientContext ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) {
    *error = DrainSslErrors("cannot create a TLS context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_AUTO_RETRY);
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1) {
      *error = SslFailure("cannot load the CA file " + options.ca_file);
      return nullptr;
    }
  } else if (!options.skip_verify && !LoadSystemStore(ctx.get(), error)) {
    return nullptr;
  }
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    if (options.cert_file.empty() || options.key_file.empty()) {
      *error = "a client certificate needs both a certificate file and a key file";
      return nullptr;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str()) != 1) {
      *error = SslFailure("cannot load the client certificate " + options.cert_file);
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      *error = SslFailure("cannot load the client key " + options.key_file);
      return nullptr;
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
      *error = DrainSslErrors("the client key does not match its certificate");
      return nullptr;
    }
  }
  SSL_CTX_set_verify(ctx.get(), options.skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  return ctx;
}

bool PrepareClientSession(SSL* ssl, std::string_view host, bool verify, std::string* error) {
  const std::string name(host);
  in6_addr scratch{};
  const bool ip = inet_pton(AF_INET, name.c_str(), &scratch) == 1 ||
                  inet_pton(AF_INET6, name.c_str(), &scratch) == 1;
  // RFC 6066: SNI carries DNS names only.
  // SSL_set_tlsext_host_name() spelled out: the macro's C cast trips -Wold-style-cast.
  if (!ip && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                      const_cast<char*>(name.c_str())) != 1) {
    *error = DrainSslErrors("cannot set the TLS server name " + name);
    return false;
  }
  if (!verify) return true;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  if (ok != 1) {
    *error = DrainSslErrors("cannot check the certificate against " + name);
    return false;
  }
  if (!ip) X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return true;
}

}  // namespace katsubushi::tls
