// ChannelAcceptor: the gRPC front's listener. It accepts TCP connections
// itself and hands each to the grpc::Server as a channel by its descriptor
// (grpc::AddInsecureChannelFromFd), instead of letting gRPC listen.
//
// Why: the descriptor is what ReplyCoalescer needs to coalesce a batch's
// replies (gRPC names such a peer "fd:<n>"), and the listener then binds like
// the other fronts' (no SO_REUSEPORT: a second server on the same port fails
// to start instead of sharing it).
//
// TLS (SetTls): the connection goes to gRPC through an
// ExternalConnectionAcceptor with TLS credentials instead (tls_credentials.h
// says why), once its first byte has arrived and starts a TLS handshake
// record. Waiting for that byte here, on this thread, is what lets the front
// count the failures that gRPC would not report: a plaintext client (closed
// at its first byte), one that closes first, and one that sends nothing until
// the handshake deadline. After the hand-over gRPC enforces the same deadline
// (GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS) on the rest of the handshake, so a
// stalled handshake lasts at most twice the deadline.
//
// One thread waits in poll(2) on the listening socket, an eventfd that
// Stop() signals, and the connections waiting for their first byte. After
// Stop() returns no channel is added any more, so the server's shutdown that
// follows sees every connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>

#include <sys/socket.h>

#include "grpc/backend.h"

namespace grpc {
class Server;
namespace experimental {
class ExternalConnectionAcceptor;
}
}  // namespace grpc

namespace katsubushi::grpc_api {

class PeerSockets;

class ChannelAcceptor {
 public:
  // Out of descriptors (EMFILE/ENFILE): wait this long before accepting
  // again rather than spin on the pending connection.
  static constexpr std::chrono::milliseconds kRetryWhenOutOfDescriptors{100};
  // TLS: connections waiting for their first byte at once. Past this the
  // listener is not polled (new connections wait in the kernel's backlog),
  // which bounds this thread's memory and poll set.
  static constexpr size_t kMaxWaitingForHello = 4096;
  // The first byte of a TLS handshake record (RFC 8446, 5.1).
  static constexpr unsigned char kTlsHandshakeRecord = 0x16;

  struct Tls {
    grpc::experimental::ExternalConnectionAcceptor* acceptor;  // with TLS credentials
    PeerSockets* peers;                                          // told of each connection
    Backend* backend;                                            // counts the failures
    std::chrono::milliseconds handshake_timeout;
  };

  ChannelAcceptor() = default;
  ~ChannelAcceptor();
  ChannelAcceptor(const ChannelAcceptor&) = delete;
  ChannelAcceptor& operator=(const ChannelAcceptor&) = delete;

  // Binds and listens, by the rule of net::ListenTcp (which the module
  // cannot link: it is Asio's): empty for every address (one dual-stack
  // socket, or 0.0.0.0 without IPv6), else an IPv4 or IPv6 literal
  // ("127.0.0.1", "[::1]"). Port 0 picks an ephemeral port.
  std::error_code Listen(const std::string& address, uint16_t port);
  uint16_t port() const { return port_; }

  // Before Start(): hand connections over with TLS. What `tls` points to
  // must outlive Stop().
  void SetTls(const Tls& tls) { tls_ = tls; tls_enabled_ = true; }

  // Starts accepting into `server`, which must outlive Stop(). After a
  // successful Listen(), once.
  void Start(grpc::Server& server);
  // Closes the listener and joins the thread. Idempotent.
  void Stop();

 private:
  void AcceptLoop(grpc::Server& server);
  // The first byte of a TLS connection came, or not yet (false: keep waiting).
  bool OnFirstByte(int fd, const sockaddr_storage& peer);

  Tls tls_{};
  bool tls_enabled_ = false;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace katsubushi::grpc_api
