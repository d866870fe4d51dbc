#include "health_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace katsubushi {
namespace {

using Clock = std::chrono::steady_clock;

// A reason is what the one line says; std::nullopt from an I/O step means it
// succeeded.
using Failure = std::optional<std::string>;

class Connection {
 public:
  explicit Connection(Clock::time_point deadline) : deadline_(deadline) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }

  Failure ConnectTcp(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return Connect(AF_INET, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  }

  Failure ConnectUnix(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return "socket path too long";
    std::memcpy(addr.sun_path, path.data(), path.size());
    return Connect(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  }

  Failure Send(std::string_view data) {
    while (!data.empty()) {
      if (Failure f = Wait(POLLOUT)) return f;
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return std::string("send: ") + std::strerror(errno);
      data.remove_prefix(static_cast<size_t>(n));
    }
    return std::nullopt;
  }

  // Reads into *reply until `complete(*reply)` holds or the peer closes.
  template <typename Complete>
  Failure Receive(std::string* reply, Complete complete) {
    char buf[512];
    while (!complete(*reply)) {
      if (reply->size() > kHealthCheckMaxReply) return "reply too long";
      if (Failure f = Wait(POLLIN)) return f;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return std::string("recv: ") + std::strerror(errno);
      if (n == 0) return std::nullopt;  // closed: the caller judges what came
      reply->append(buf, static_cast<size_t>(n));
    }
    return std::nullopt;
  }

 private:
  Failure Connect(int family, const sockaddr* addr, socklen_t len) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    if (::connect(fd_, addr, len) == 0) return std::nullopt;
    if (errno != EINPROGRESS && errno != EAGAIN) return std::string("connect: ") + std::strerror(errno);
    if (Failure f = Wait(POLLOUT)) return f;
    int error = 0;
    socklen_t error_len = sizeof error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &error_len);
    if (error != 0) return std::string("connect: ") + std::strerror(error);
    return std::nullopt;
  }

  Failure Wait(short events) {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return "no answer within " + std::to_string(kHealthCheckTimeout.count()) + " ms";
      pollfd p{fd_, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return std::string("poll: ") + std::strerror(errno);
      if (n > 0) return std::nullopt;
    }
  }

  Clock::time_point deadline_;
  int fd_ = -1;
};

std::string FirstLine(std::string_view text) {
  text = text.substr(0, text.find_first_of("\r\n"));
  constexpr size_t kShown = 200;
  return std::string(text.substr(0, kShown));
}

// Returns the reason it is unhealthy, or nullopt.
Failure CheckHttp(int port, Clock::time_point deadline) {
  Connection c(deadline);
  if (Failure f = c.ConnectTcp(port)) return f;
  if (Failure f = c.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")) {
    return f;
  }
  std::string reply;
  // Connection: close: the whole answer has come when the server closes.
  if (Failure f = c.Receive(&reply, [](const std::string&) { return false; })) return f;
  const size_t status_end = reply.find("\r\n");
  if (status_end == std::string::npos) return "no HTTP status line in the reply";
  const std::string status = reply.substr(0, status_end);  // HTTP/1.1 200 OK
  if (status.rfind("HTTP/1.", 0) != 0 || status.size() < 12) return "not an HTTP reply: " + FirstLine(status);
  if (status.compare(9, 3, "200") == 0) return std::nullopt;
  const size_t body = reply.find("\r\n\r\n");
  return "answered " + status.substr(9) +
         (body == std::string::npos ? "" : ": " + FirstLine(reply.substr(body + 4)));
}

Failure CheckMemcache(Connection& c) {
  if (Failure f = c.Send("get id\r\n")) return f;
  std::string reply;
  // Complete at END, or at the first line when it is an error.
  auto complete = [](const std::string& r) {
    if (r.ends_with("END\r\n")) return true;
    return r.find("\r\n") != std::string::npos && r.rfind("VALUE ", 0) != 0;
  };
  if (Failure f = c.Receive(&reply, complete)) return f;
  if (reply.rfind("VALUE id ", 0) == 0 && reply.ends_with("END\r\n")) return std::nullopt;
  if (reply.empty()) return "the server closed the connection without an answer";
  return "get answered " + FirstLine(reply);
}

}  // namespace

int RunHealthCheck(const Config& config) {
  const Clock::time_point deadline = Clock::now() + kHealthCheckTimeout;
  std::string what;
  Failure failure;
  if (config.http_port != 0) {
    what = "HTTP 127.0.0.1:" + std::to_string(config.http_port) + "/healthz";
    failure = CheckHttp(config.http_port, deadline);
  } else if (!config.sock.empty()) {
    what = "memcached " + config.sock;
    Connection c(deadline);
    failure = c.ConnectUnix(config.sock);
    if (!failure) failure = CheckMemcache(c);
  } else if (config.port != 0) {
    what = "memcached 127.0.0.1:" + std::to_string(config.port);
    Connection c(deadline);
    failure = c.ConnectTcp(config.port);
    if (!failure) failure = CheckMemcache(c);
  } else {
    std::printf("unhealthy: nothing to check (no -http-port, -sock or -port)\n");
    return 1;
  }
  if (failure) {
    std::printf("unhealthy: %s: %s\n", what.c_str(), failure->c_str());
    return 1;
  }
  std::printf("healthy: %s\n", what.c_str());
  return 0;
}

}  // namespace katsubushi
