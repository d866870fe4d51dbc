#include "grpc/tls_credentials.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>

#include <atomic>
#include <cstdint>

#include "katsubushi/tls/certificate_store.h"

namespace katsubushi::grpc_api {
namespace {

// Answers gRPC's question before each handshake (tls_credentials.h).
class CertificateFetcher {
 public:
  explicit CertificateFetcher(Backend& backend) : backend_(backend) {}

  static grpc_ssl_certificate_config_reload_status Fetch(void* self,
                                                         grpc_ssl_server_certificate_config** config) {
    return static_cast<CertificateFetcher*>(self)->Fetch(config);
  }

 private:
  grpc_ssl_certificate_config_reload_status Fetch(grpc_ssl_server_certificate_config** config) {
    // One atomic load per connection while nothing changed.
    if (backend_.CertificateGeneration() == served_.load(std::memory_order_acquire)) {
      return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    const std::shared_ptr<const tls::CertificateSet> set = backend_.Certificates();
    if (!set) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;  // gRPC keeps what it has
    const grpc_ssl_pem_key_cert_pair pair{set->key_pem.c_str(), set->cert_chain_pem.c_str()};
    // gRPC copies the strings, and owns *config from here on. Its fetcher
    // path asserts that a config has client roots even when no client
    // certificate is asked for (ssl_security_connector.cc); then our own
    // chain stands in, and is never used: without mutual TLS the server
    // sends no CertificateRequest.
    *config = grpc_ssl_server_certificate_config_create(
        set->client_ca_pem.empty() ? set->cert_chain_pem.c_str() : set->client_ca_pem.c_str(), &pair, 1);
    if (*config == nullptr) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
    served_.store(set->generation, std::memory_order_release);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }

  Backend& backend_;
  // The generation gRPC was last given (0: none yet). gRPC calls the fetcher
  // under its own lock; atomic so that this does not depend on it.
  std::atomic<uint64_t> served_{0};
};

// grpc::ServerCredentials over gRPC core credentials. grpcpp 1.51 has no
// public wrapper for core credentials built with a fetcher; the server calls
// AddPortToServer for an ExternalConnectionAcceptor's "external:" port, which
// is all this needs to do (what grpcpp's own SSL credentials do there).
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  CoreServerCredentials(grpc_server_credentials* credentials, std::unique_ptr<CertificateFetcher> fetcher)
      : credentials_(credentials), fetcher_(std::move(fetcher)) {}
  ~CoreServerCredentials() override { grpc_server_credentials_release(credentials_); }
  CoreServerCredentials(const CoreServerCredentials&) = delete;
  CoreServerCredentials& operator=(const CoreServerCredentials&) = delete;

  // No per-call authentication here: mutual TLS is the handshake's.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& address, grpc_server* server) override {
    return grpc_server_add_http2_port(server, address.c_str(), credentials_);
  }

  grpc_server_credentials* const credentials_;
  // gRPC's security connector holds its pointer; the server holds these
  // credentials (through its acceptor) for as long as it can accept.
  const std::unique_ptr<CertificateFetcher> fetcher_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> MakeTlsCredentials(Backend& backend, std::string* error) {
  const std::shared_ptr<const tls::CertificateSet> set = backend.Certificates();
  if (!set) {
    *error = "no TLS certificate";
    return nullptr;
  }
  auto fetcher = std::make_unique<CertificateFetcher>(backend);
  grpc_ssl_server_credentials_options* options = grpc_ssl_server_credentials_create_options_using_config_fetcher(
      set->client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                 : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
      &CertificateFetcher::Fetch, fetcher.get());
  if (options == nullptr) {
    *error = "gRPC refused the TLS options";
    return nullptr;
  }
  grpc_server_credentials* credentials = grpc_ssl_server_credentials_create_with_options(options);
  if (credentials == nullptr) {
    *error = "gRPC refused the TLS credentials";
    return nullptr;
  }
  return std::make_shared<CoreServerCredentials>(credentials, std::move(fetcher));
}

}  // namespace katsubushi::grpc_api
