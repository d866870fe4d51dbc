#include "grpc/channel_acceptor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_posix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "grpc/peer_sockets.h"

namespace katsubushi::grpc_api {
namespace {

// Ended connections taken per epoll_wait; more are taken by the next call.
constexpr int kReapBatch = 64;

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
  // Closing a duplicate closes neither gRPC's descriptor nor the connection.
  for (const auto& [fd, watched] : watched_) close(fd);
  if (watch_fd_ >= 0) close(watch_fd_);
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
  if (!ec) {
    watch_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (watch_fd_ < 0) ec = LastError();
  }
  if (ec) {
    close(fd);
    if (wake_fd_ >= 0) close(wake_fd_);
    wake_fd_ = -1;
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

bool ChannelAcceptor::OnFirstByte(int fd, const sockaddr_storage& peer) {
  unsigned char first = 0;
  const ssize_t n = recv(fd, &first, 1, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (n == 1 && first == kTlsHandshakeRecordType) {
    if (!Watch(fd)) return true;
    tls_.peers->Add(fd, peer);  // before gRPC can answer a call on it
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters connection;
    connection.listener_fd = listen_fd_;
    connection.fd = fd;  // gRPC owns the descriptor now; the peeked byte is still to be read
    tls_.acceptor->HandleNewConnection(&connection);
    return true;
  }
  // A plaintext client (an HTTP/2 preface, a memcached command), or one that
  // closed or reset: nothing to answer in TLS.
  tls_.backend->CountTlsHandshakeFailure(n == 1 ? TlsHandshakeFailure::kNotTls : TlsHandshakeFailure::kClosed);
  close(fd);
  return true;
}

void ChannelAcceptor::AcceptLoop(grpc::Server& server) {
  using Clock = std::chrono::steady_clock;
  // fds[0]: the listener, fds[1]: Stop(), fds[2]: the watch set, then the
  // TLS connections waiting for their first byte, in the order of `waiting`.
  constexpr size_t kFirstWaiting = 3;
  struct Waiting {
    sockaddr_storage peer;
    Clock::time_point deadline;
  };
  std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {watch_fd_, POLLIN, 0}};
  std::vector<Waiting> waiting;
  Clock::time_point retry_accept_at = Clock::time_point::max();
  for (;;) {
    const Clock::time_point now = Clock::now();
    Clock::time_point wake_at = retry_accept_at;
    for (const Waiting& w : waiting) wake_at = std::min(wake_at, w.deadline);
    int timeout_ms = -1;
    if (wake_at != Clock::time_point::max()) {
      timeout_ms = static_cast<int>(
          std::chrono::ceil<std::chrono::milliseconds>(std::max(wake_at - now, Clock::duration::zero())).count());
    }
    const bool may_accept = waiting.size() < kMaxWaitingForHello && retry_accept_at == Clock::time_point::max();
    fds[0].events = may_accept ? POLLIN : 0;
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;  // revents are not set: poll again
      break;                         // cannot happen with valid descriptors
    }
    if (fds[1].revents != 0) break;  // Stop()
    if (fds[2].revents != 0) Reap(0);
    const Clock::time_point after = Clock::now();
    if (after >= retry_accept_at) retry_accept_at = Clock::time_point::max();
    // The waiting connections first (their entries move as they go).
    for (size_t i = waiting.size(); i-- > 0;) {
      pollfd& p = fds[kFirstWaiting + i];
      bool done = false;
      if (p.revents != 0) done = OnFirstByte(p.fd, waiting[i].peer);
      if (!done && after >= waiting[i].deadline) {
        tls_.backend->CountTlsHandshakeFailure(TlsHandshakeFailure::kTimeout);
        close(p.fd);
        done = true;
      }
      if (done) {
        fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(kFirstWaiting + i));
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    if (fds[0].revents == 0) continue;
    for (;;) {  // every connection waiting, then poll again
      sockaddr_storage peer{};
      socklen_t peer_length = sizeof peer;
      const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_length,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          retry_accept_at = Clock::now() + kRetryWhenOutOfDescriptors;
        }
        break;  // EAGAIN, or the peer gave up (ECONNABORTED): nothing to do
      }
      // What gRPC's own listener sets: each reply leaves at once unless
      // ReplyCoalescer holds it.
      const int one = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (!tls_enabled_) {
        if (!Watch(fd)) {
          retry_accept_at = Clock::now() + kRetryWhenOutOfDescriptors;
          break;
        }
        grpc::AddInsecureChannelFromFd(&server, fd);  // gRPC owns the descriptor now
        continue;
      }
      fds.push_back({fd, POLLIN, 0});
      waiting.push_back({peer, Clock::now() + tls_.handshake_timeout});
      if (waiting.size() >= kMaxWaitingForHello) break;
    }
  }
  for (size_t i = kFirstWaiting; i < fds.size(); ++i) close(fds[i].fd);  // stopped before their first byte
}

bool ChannelAcceptor::Watch(int fd) {
  const int watch = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (watch < 0) {  // out of descriptors, in effect
    close(fd);
    return false;
  }
  // Edge-triggered and no events asked for: only the hang-up (and errors)
  // are reported, once each, so a connection that is merely busy never wakes
  // this thread.
  epoll_event event{};
  event.events = EPOLLET;
  event.data.fd = watch;
  if (epoll_ctl(watch_fd_, EPOLL_CTL_ADD, watch, &event) != 0) {
    close(watch);
    close(fd);
    return false;
  }
  watched_.emplace(watch, false);
  return true;
}

void ChannelAcceptor::Reap(int timeout_ms) {
  epoll_event events[kReapBatch];
  for (;;) {
    const int n = epoll_wait(watch_fd_, events, kReapBatch, timeout_ms);
    for (int i = 0; i < n; ++i) {
      // An error alone (the connection is still gRPC's) is not the end; the
      // hang-up follows when gRPC shuts the connection down.
      if ((events[i].events & EPOLLHUP) == 0) continue;
      const int fd = events[i].data.fd;
      (void)epoll_ctl(watch_fd_, EPOLL_CTL_DEL, fd, nullptr);
      close(fd);
      watched_.erase(fd);
    }
    if (n < kReapBatch) return;
    timeout_ms = 0;  // a full batch: take the rest without waiting
  }
}

size_t ChannelAcceptor::CloseQuietChannels(std::chrono::steady_clock::duration quiet) {
  const auto quiet_ms = std::chrono::ceil<std::chrono::milliseconds>(quiet).count();
  size_t closed = 0;
  for (auto& [fd, shut_down] : watched_) {
    if (shut_down) continue;
    tcp_info info{};
    socklen_t length = sizeof info;
    int unread = 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
        ioctl(fd, FIONREAD, &unread) != 0) {
      continue;  // cannot tell: gRPC ends it, or the drain's bound does
    }
    // The kernel's milliseconds since the last segment that carried data
    // (bare acknowledgements do not count): any frame of the client's.
    if (static_cast<int64_t>(info.tcpi_last_data_recv) < quiet_ms || unread > 0) continue;
    // Both ways, as gRPC would: its transport reads the end and closes.
    (void)shutdown(fd, SHUT_RDWR);
    shut_down = true;
    ++closed;
  }
  return closed;
}

bool ChannelAcceptor::AwaitChannelsClosed(std::chrono::steady_clock::time_point until) {
  if (watch_fd_ < 0) return true;
  Reap(0);
  while (!watched_.empty()) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return false;
    // Rounded up, so that the wait does not end just before `until`.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    Reap(static_cast<int>(std::min<int64_t>(ms, std::numeric_limits<int>::max())));
  }
  return true;
}

}  // namespace katsubushi::grpc_api
