// TLS client contexts, shared by every connection this process makes as a TLS
// client (Redis today). One place decides what a verified connection is:
//
//   * TLS 1.2 at least; OpenSSL's default cipher list and TLS 1.3 suites;
//   * the peer's certificate chain is verified against `ca_file`, or when none
//     is given against the system's CA store (OpenSSL's compiled-in paths, the
//     SSL_CERT_FILE / SSL_CERT_DIR variables, then the bundle paths of the
//     common distributions: a static binary runs on hosts whose OpenSSL
//     layout differs from the one it was built on, Amazon Linux in Lambda);
//   * the peer's name is checked: a DNS name against the certificate's names
//     (and sent as SNI), an IP literal against its IP addresses;
//   * `skip_verify` turns both checks off; the caller logs that as a warning.
//
// Thread safety: a context is immutable once built and may be shared by any
// number of connections on any threads (OpenSSL's rule for SSL_CTX).
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;

namespace katsubushi::tls {

struct TlsClientOptions {
  std::string ca_file;    // PEM bundle; empty: the system's CA store
  std::string cert_file;  // client certificate chain (mutual TLS); PEM
  std::string key_file;   // its private key; PEM
  bool skip_verify = false;
};

using ClientContext = std::shared_ptr<ssl_ctx_st>;

// Builds a context; null with *error saying what could not be loaded.
ClientContext MakeClientContext(const TlsClientOptions& options, std::string* error);

// Prepares a new session of `context` to talk to `host`: SNI for a DNS name,
// and the name or address check unless verification is off. False with
// *error when OpenSSL refuses the name.
bool PrepareClientSession(ssl_st* ssl, std::string_view host, bool verify, std::string* error);

// OpenSSL's error queue as one line (and emptied); `fallback` when empty.
std::string DrainSslErrors(std::string_view fallback);
// "`what`: <OpenSSL's reasons>", or `what` alone when it gave none; empties the queue.
std::string SslFailure(std::string_view what);

}  // namespace katsubushi::tls
