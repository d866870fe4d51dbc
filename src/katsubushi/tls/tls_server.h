// Server TLS contexts, built from a CertificateSet for one front. One place
// decides what a TLS front accepts:
//
//   * TLS 1.2 at least, 1.3 preferred (OpenSSL negotiates the highest both
//     sides have); for 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM,
//     ChaCha20-Poly1305), the "intermediate" profile most deployments use;
//   * no renegotiation (a client-initiated renegotiation is a cheap way to
//     make a server do handshakes);
//   * ALPN: the front's protocols ("h2" for gRPC, "http/1.1" for HTTP); a
//     client that offers none of them is served without ALPN rather than
//     refused, as nginx does;
//   * mutual TLS when the set has a client CA: a client must present a
//     certificate that CA signed, or the handshake fails;
//   * idle connections give their read and write buffers back
//     (SSL_MODE_RELEASE_BUFFERS): 5,000 idle TLS connections would otherwise
//     hold ~34 KiB each.
//
// ClassifyHandshakeFailure names why a handshake failed, for the metric of
// handshake failures by reason.
//
// Thread safety: a context is immutable once built and may be shared by any
// number of connections on any threads.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/tls/certificate_store.h"
#include "katsubushi/tls_handshake_failure.h"

struct ssl_ctx_st;
struct ssl_st;

namespace katsubushi::tls {

using ServerContext = std::shared_ptr<ssl_ctx_st>;

// `alpn`: the protocols this front speaks, most preferred first; empty for none.
ServerContext MakeServerContext(const CertificateSet& certificates, const std::vector<std::string>& alpn,
                                std::string* error);

// Why the handshake on `ssl` failed. `ssl_error` is SSL_get_error()'s answer
// to the failed call; read it (and the error queue, which this empties)
// before anything else touches OpenSSL on this thread.
TlsHandshakeFailure ClassifyHandshakeFailure(const ssl_st* ssl, int ssl_error);
// The same from what was read already: the last code of the error queue
// (TlsPipe::Failure keeps both).
TlsHandshakeFailure ClassifyHandshakeFailure(const ssl_st* ssl, int ssl_error, unsigned long code);

// Why a handshake failed, from the OpenSSL error code alone (0: the peer
// closed), for handshakes run elsewhere that report only the code (gRPC's).
TlsHandshakeFailure ClassifyOpenSslError(unsigned long code);

// The context for new connections of one front: rebuilt from the store's
// current set when its generation moved on, shared until then.
//
// Thread safety: Current() from any thread.
class ServerContextSource {
 public:
  // Null with *error when no context can be built from the current set.
  static std::unique_ptr<ServerContextSource> Make(const CertificateStore& store, std::vector<std::string> alpn,
                                                   std::string* error);

  // Never null; a rebuild that fails keeps the previous context (and logs).
  ServerContext Current();

 private:
  ServerContextSource(const CertificateStore& store, std::vector<std::string> alpn)
      : store_(store), alpn_(std::move(alpn)) {}

  const CertificateStore& store_;
  const std::vector<std::string> alpn_;
  std::mutex mutex_;
  ServerContext context_;    // guarded by mutex_
  uint64_t built_from_ = 0;  // guarded by mutex_; the generation context_ was built from
};

}  // namespace katsubushi::tls
