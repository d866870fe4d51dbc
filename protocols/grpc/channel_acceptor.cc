#include "grpc/channel_acceptor.h"

#include <arpa/inet.h>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace katsubushi::grpc_api {
namespace {

std::error_code LastError() { return {errno, std::generic_category()}; }

// The socket address for `address` (see Listen), or an error.
std::error_code Resolve(const std::string& address, uint16_t port, sockaddr_storage* out,
                        socklen_t* length, bool* any) {
  std::memset(out, 0, sizeof *out);
  *any = address.empty();
  std::string literal = address;
  if (literal.size() >= 2 && literal.front() == '[' && literal.back() == ']') {
    literal = literal.substr(1, literal.size() - 2);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (*any) {
    v6->sin6_family = AF_INET6;
    v6->sin6_addr = in6addr_any;
    v6->sin6_port = htons(port);
    *length = sizeof *v6;
  } else if (inet_pton(AF_INET, literal.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *length = sizeof *v4;
  } else if (inet_pton(AF_INET6, literal.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *length = sizeof *v6;
  } else {
    return std::make_error_code(std::errc::invalid_argument);
  }
  return {};
}

}  // namespace

ChannelAcceptor::~ChannelAcceptor() {
  Stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

std::error_code ChannelAcceptor::Listen(const std::string& address, uint16_t port) {
  if (listen_fd_ >= 0) return std::make_error_code(std::errc::operation_in_progress);
  sockaddr_storage addr;
  socklen_t length = 0;
  bool any = false;
  if (std::error_code ec = Resolve(address, port, &addr, &length, &any)) return ec;
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && any) {  // no IPv6 on this host: every IPv4 address
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    std::memset(&addr, 0, sizeof addr);
    v4->sin_family = AF_INET;
    v4->sin_addr.s_addr = htonl(INADDR_ANY);
    v4->sin_port = htons(port);
    length = sizeof *v4;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) return LastError();
  const int one = 1;
  const int zero = 0;
  std::error_code ec;
  if (addr.ss_family == AF_INET6 && any &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
    ec = LastError();
  }
  if (!ec && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) ec = LastError();
  if (!ec && bind(fd, reinterpret_cast<const sockaddr*>(&addr), length) != 0) ec = LastError();
  if (!ec && listen(fd, SOMAXCONN) != 0) ec = LastError();
  sockaddr_storage bound;
  socklen_t bound_length = sizeof bound;
  if (!ec && getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) {
    ec = LastError();
  }
  if (!ec) {
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) ec = LastError();
  }
  if (ec) {
    close(fd);
    return ec;
  }
  listen_fd_ = fd;
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return {};
}

void ChannelAcceptor::Start(grpc::Server& server) {
  thread_ = std::thread([this, &server] { AcceptLoop(server); });
}

void ChannelAcceptor::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
}

void ChannelAcceptor::AcceptLoop(grpc::Server& server) {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  int timeout_ms = -1;
  for (;;) {
    const int ready = poll(fds, 2, timeout_ms);
    if (ready < 0 && errno != EINTR) return;  // cannot happen with valid descriptors
    if (fds[1].revents != 0) return;           // Stop()
    timeout_ms = -1;
    for (;;) {  // every connection waiting, then poll again
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          timeout_ms = static_cast<int>(kRetryWhenOutOfDescriptors.count());
        }
        break;  // EAGAIN, or the peer gave up (ECONNABORTED): nothing to do
      }
      // What gRPC's own listener sets: each reply leaves at once unless
      // ReplyCoalescer holds it.
      const int one = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      grpc::AddInsecureChannelFromFd(&server, fd);  // gRPC owns the descriptor now
    }
  }
}

}  // namespace katsubushi::grpc_api
