// A blocking loopback client with timeouts, for tests that speak raw bytes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>

namespace katsubushi::testing {

using namespace std::chrono_literals;

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    Init(reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  Client(int family, const sockaddr* addr, socklen_t len) {
    fd_ = ::socket(family, SOCK_STREAM, 0);
    Init(addr, len);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;

  bool connected() const { return connected_; }

  void Send(std::string_view data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  // Reads until `done(buffer)` or the timeout; returns what arrived.
  template <typename Done>
  std::string ReadUntil(Done done, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(buffer_) && std::chrono::steady_clock::now() < deadline) {
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) {
        eof_ = true;
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        eof_ = true;
        break;
      }
      buffer_.append(buf, static_cast<size_t>(n));
    }
    std::string out;
    out.swap(buffer_);
    return out;
  }
  std::string ReadUntilSuffix(std::string_view suffix, std::chrono::milliseconds timeout = 5s) {
    return ReadUntil([suffix](const std::string& b) { return b.ends_with(suffix); }, timeout);
  }
  std::string ReadBytes(size_t n, std::chrono::milliseconds timeout = 5s) {
    return ReadUntil([n](const std::string& b) { return b.size() >= n; }, timeout);
  }
  // True when the server closed the connection within the timeout.
  bool WaitClosed(std::chrono::milliseconds timeout = 5s) {
    ReadUntil([](const std::string&) { return false; }, timeout);
    return eof_;
  }

 private:
  void Init(const sockaddr* addr, socklen_t len) {
    timeval tv{0, 200'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    connected_ = ::connect(fd_, addr, len) == 0;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

}  // namespace katsubushi::testing
