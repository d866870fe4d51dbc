// ChannelAcceptor: the gRPC front's listener. It accepts TCP connections
// itself and hands each to the grpc::Server as a channel by its descriptor
// (grpc::AddInsecureChannelFromFd), instead of letting gRPC listen.
//
// Why: the descriptor is what ReplyCoalescer needs to coalesce a batch's
// replies (gRPC names such a peer "fd:<n>"), and the listener then binds like
// the other fronts' (no SO_REUSEPORT: a second server on the same port fails
// to start instead of sharing it).
//
// One thread waits in poll(2) on the listening socket and an eventfd that
// Stop() signals. After Stop() returns no channel is added any more, so the
// server's shutdown that follows sees every connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>

namespace grpc {
class Server;
}

namespace katsubushi::grpc_api {

class ChannelAcceptor {
 public:
  // Out of descriptors (EMFILE/ENFILE): wait this long before accepting
  // again rather than spin on the pending connection.
  static constexpr std::chrono::milliseconds kRetryWhenOutOfDescriptors{100};

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

  // Starts accepting into `server`, which must outlive Stop(). After a
  // successful Listen(), once.
  void Start(grpc::Server& server);
  // Closes the listener and joins the thread. Idempotent.
  void Stop();

 private:
  void AcceptLoop(grpc::Server& server);

  int listen_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace katsubushi::grpc_api
