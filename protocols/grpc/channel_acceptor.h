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
// Stop() signals, the watch set below, and the connections waiting for their
// first byte. After Stop() returns no channel is added any more, so the
// server's shutdown that follows sees every connection.
//
// It also knows when gRPC is done with each connection, which the stop waits
// for (goaway.h): it keeps a duplicate of every descriptor it hands over, in
// an epoll set. gRPC ends a connection with shutdown(SHUT_RDWR) before it
// closes it (chttp2's close_transport_locked shuts the endpoint down), which
// the duplicate shows as EPOLLHUP; then the duplicate is closed. A
// connection costs two descriptors while it is open. Through the duplicate
// the stop can also close a connection whose client has gone quiet
// (CloseQuietChannels), as the other fronts close their idle connections.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
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
  void SetTls(const Tls& tls) {
    tls_ = tls;
    tls_enabled_ = true;
  }

  // Starts accepting into `server`, which must outlive Stop(). After a
  // successful Listen(), once.
  void Start(grpc::Server& server);
  // Closes the listener and joins the thread. Idempotent.
  void Stop();

  // After Stop(): waits until gRPC has ended every connection handed to it,
  // or until `until`. Returns whether none is left open.
  bool AwaitChannelsClosed(std::chrono::steady_clock::time_point until);
  // The connections gRPC has not ended yet (as of the last look).
  size_t open_channels() const { return watched_.size(); }
  // After Stop(): shuts down every connection that has received nothing for
  // `quiet` and has nothing left unread; gRPC then ends it (its client sees
  // the connection close). Only for a moment when the server is answering no
  // request: a quiet connection may be waiting for its reply. Returns how
  // many it shut down.
  size_t CloseQuietChannels(std::chrono::steady_clock::duration quiet);

 private:
  void AcceptLoop(grpc::Server& server);
  // Puts a duplicate of `fd` in the watch set. False when it cannot: then
  // `fd` is closed instead (the client sees a reset and may retry).
  bool Watch(int fd);
  // The first byte of a TLS connection came, or not yet (false: keep waiting).
  bool OnFirstByte(int fd, const sockaddr_storage& peer);
  // Closes the duplicates of connections gRPC has ended; waits up to
  // `timeout_ms` (epoll_wait's) for the first.
  void Reap(int timeout_ms);

  Tls tls_{};
  bool tls_enabled_ = false;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int watch_fd_ = -1;  // epoll set of the duplicates
  // The duplicates, each with whether CloseQuietChannels has shut it down.
  // Only the accepting thread touches it until Stop() has joined that
  // thread; only the stopping thread after.
  std::map<int, bool> watched_;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace katsubushi::grpc_api
