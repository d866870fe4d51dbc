#include "katsubushi/client/connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace katsubushi::client {
namespace {

// Milliseconds poll() may wait before `deadline`, rounded up so that a wait
// never ends just before the deadline and spins; 0 once it has passed.
int PollMillis(Deadline deadline) {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000 ? 1'000'000 : static_cast<int>(ms);
}

// Waits until `fd` is ready for `events`; false with *failure set on timeout
// or a poll error.
bool WaitFor(int fd, short events, Deadline deadline, IoFailure* failure) {
  while (true) {
    pollfd p{fd, events, 0};
    const int millis = PollMillis(deadline);
    if (millis == 0) {
      *failure = {kTimedOut, 0};
      return false;
    }
    const int n = ::poll(&p, 1, millis);
    if (n > 0) return true;  // readiness or an error the next call reports
    if (n < 0 && errno != EINTR) {
      *failure = {kReceiveFailed, errno};
      return false;
    }
  }
}

// Connects one socket address; the fd on success, -1 with *failure set.
int ConnectOne(const sockaddr* address, socklen_t length, Deadline deadline, IoFailure* failure) {
  const int fd = ::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failure = {kConnectFailed, errno};
    return -1;
  }
  if (::connect(fd, address, length) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      *failure = {kConnectFailed, errno};
      ::close(fd);
      return -1;
    }
    if (!WaitFor(fd, POLLOUT, deadline, failure)) {
      ::close(fd);
      return -1;
    }
    int error = 0;
    socklen_t error_length = sizeof(error);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length) != 0) error = errno;
    if (error != 0) {
      *failure = {kConnectFailed, error};
      ::close(fd);
      return -1;
    }
  }
  if (address->sa_family != AF_UNIX) {
    // Requests are one small write each; Nagle would only delay them.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

}  // namespace

Connection::~Connection() { Close(); }

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void Connection::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Connection Connection::Open(const ServerAddress& server, Deadline deadline, IoFailure* failure) {
  if (server.transport == Transport::kMemcacheUnix) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, server.unix_path.data(), server.unix_path.size());  // length checked at parse
    return Connection(ConnectOne(reinterpret_cast<const sockaddr*>(&address), sizeof(address), deadline, failure));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(server.port);
  if (::getaddrinfo(server.host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    *failure = {kResolveFailed, 0};
    return Connection();
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ConnectOne(a->ai_addr, a->ai_addrlen, deadline, failure);
    if (fd >= 0) return Connection(fd);
    if (failure->status == kTimedOut) break;
  }
  return Connection();
}

bool Connection::SendAll(std::string_view data, Deadline deadline, IoFailure* failure) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd_, POLLOUT, deadline, failure)) return false;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      *failure = {kSendFailed, n < 0 ? errno : 0};
      return false;
    }
  }
  return true;
}

bool Connection::Receive(std::string* buffer, size_t max_bytes, Deadline deadline, bool* eof,
                         IoFailure* failure) {
  *eof = false;
  // Wait first: this is called right after a request is sent, when the reply
  // is almost never there yet, so a recv() first would only add an EAGAIN.
  if (!WaitFor(fd_, POLLIN, deadline, failure)) return false;
  const size_t old_size = buffer->size();
  buffer->resize(old_size + max_bytes);
  while (true) {
    const ssize_t n = ::recv(fd_, buffer->data() + old_size, max_bytes, 0);
    if (n > 0) {
      buffer->resize(old_size + static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      buffer->resize(old_size);
      *eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *failure = {kReceiveFailed, errno};
      buffer->resize(old_size);
      return false;
    }
    if (!WaitFor(fd_, POLLIN, deadline, failure)) {
      buffer->resize(old_size);
      return false;
    }
  }
}

}  // namespace katsubushi::client
