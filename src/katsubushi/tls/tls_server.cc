#include "katsubushi/tls/tls_server.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "katsubushi/tls/tls_client.h"

namespace katsubushi::tls {
namespace {

// TLS 1.2 suites when TLS 1.3 is not available to the client: ECDHE (forward
// secrecy) with an AEAD cipher only. TLS 1.3's suites are OpenSSL's default.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free);
}

// The wire form of an ALPN list: each name prefixed by its length.
std::string AlpnWire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {
    wire.push_back(static_cast<char>(p.size()));
    wire.append(p);
  }
  return wire;
}

// The server's preference first; no common protocol is served without ALPN.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
               unsigned int offered_length, void* arg) {
  const auto* ours = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_length, reinterpret_cast<const unsigned char*>(ours->data()),
                            static_cast<unsigned int>(ours->size()), offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int AlpnIndex() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void*, void* data, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(data); });
  return index;
}

bool UseChain(SSL_CTX* ctx, const CertificateSet& set, std::string* error) {
  Bio bio = MemoryBio(set.cert_chain_pem);
  X509* leaf = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    X509_free(leaf);
    *error = SslFailure("cannot use the certificate");
    return false;
  }
  X509_free(leaf);
  while (X509* link = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, link) != 1) {  // takes ownership on success
      X509_free(link);
      *error = SslFailure("cannot use the certificate chain");
      return false;
    }
  }
  ERR_clear_error();  // the loop ends on "no start line"
  Bio key_bio = MemoryBio(set.key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  const bool ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);
  if (!ok) *error = SslFailure("cannot use the private key");
  return ok;
}

bool AskForClientCertificates(SSL_CTX* ctx, const CertificateSet& set, std::string* error) {
  Bio bio = MemoryBio(set.client_ca_pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
  int count = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, ca);
    if (X509_NAME* name = X509_NAME_dup(X509_get_subject_name(ca))) sk_X509_NAME_push(names, name);
    X509_free(ca);
    ++count;
  }
  ERR_clear_error();
  if (count == 0) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    *error = "no certificate in the client CA file";
    return false;
  }
  SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return true;
}

}  // namespace

ServerContext MakeServerContext(const CertificateSet& set, const std::vector<std::string>& alpn,
                                std::string* error) {
  ERR_clear_error();
  ServerContext ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) {
    *error = SslFailure("cannot create a TLS context");
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Partial writes and a moved write buffer: a front writes what the kernel
  // takes and retries the rest later from wherever it keeps it.
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1) {
    *error = SslFailure("cannot set the TLS 1.2 ciphers");
    return nullptr;
  }
  if (!UseChain(c, set, error)) return nullptr;
  if (!set.client_ca_pem.empty() && !AskForClientCertificates(c, set, error)) return nullptr;
  if (!alpn.empty()) {
    auto* wire = new std::string(AlpnWire(alpn));
    SSL_CTX_set_ex_data(c, AlpnIndex(), wire);  // freed with the context
    SSL_CTX_set_alpn_select_cb(c, SelectAlpn, wire);
  }
  return ctx;
}

TlsHandshakeFailure ClassifyOpenSslError(unsigned long code) {
  if (code == 0) return TlsHandshakeFailure::kClosed;
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return TlsHandshakeFailure::kOther;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:  // OpenSSL 3's name for an EOF mid-handshake
      return TlsHandshakeFailure::kClosed;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNEXPECTED_RECORD:
      return TlsHandshakeFailure::kNotTls;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_NO_CERTIFICATES_RETURNED:
      return TlsHandshakeFailure::kClientCertificate;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
      return TlsHandshakeFailure::kUnsupported;
    default:
      break;
  }
  // Alerts the client sent (SSL_R_SSLV3_ALERT_* and SSL_R_TLSV1_ALERT_*):
  // OpenSSL numbers them SSL_AD_REASON_OFFSET + the alert code.
  const int reason = ERR_GET_REASON(code);
  if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
    return TlsHandshakeFailure::kRejectedByClient;
  }
  return TlsHandshakeFailure::kOther;
}

TlsHandshakeFailure ClassifyHandshakeFailure(const SSL* ssl, int ssl_error) {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  return ClassifyHandshakeFailure(ssl, ssl_error, code);
}

TlsHandshakeFailure ClassifyHandshakeFailure(const SSL* ssl, int ssl_error, unsigned long code) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return TlsHandshakeFailure::kClosed;
  if (ssl_error == SSL_ERROR_SYSCALL && code == 0) return TlsHandshakeFailure::kClosed;  // EOF or reset
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) {
    // A certificate the client CA did not sign fails in X509 verification.
    if (ssl != nullptr && SSL_get_verify_result(ssl) != X509_V_OK) return TlsHandshakeFailure::kClientCertificate;
    return code == 0 ? TlsHandshakeFailure::kClosed : TlsHandshakeFailure::kOther;
  }
  return ClassifyOpenSslError(code);
}

std::unique_ptr<ServerContextSource> ServerContextSource::Make(const CertificateStore& store,
                                                               std::vector<std::string> alpn, std::string* error) {
  std::unique_ptr<ServerContextSource> source(new ServerContextSource(store, std::move(alpn)));
  const auto set = store.current();
  source->context_ = MakeServerContext(*set, source->alpn_, error);
  if (!source->context_) return nullptr;
  source->built_from_ = set->generation;
  return source;
}

ServerContext ServerContextSource::Current() {
  std::lock_guard lock(mutex_);
  const uint64_t generation = store_.generation();
  if (generation != built_from_) {
    const auto set = store_.current();
    std::string error;
    if (ServerContext rebuilt = MakeServerContext(*set, alpn_, &error)) {
      context_ = std::move(rebuilt);
    } else {
      spdlog::error("TLS: cannot build a context from the reloaded certificate: {}; keeping the old one", error);
    }
    built_from_ = set->generation;
  }
  return context_;
}

}  // namespace katsubushi::tls
