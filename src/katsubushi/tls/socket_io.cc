#include "katsubushi/tls/socket_io.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace katsubushi::tls {

int PollMillis(Deadline deadline) {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000 ? 1'000'000 : static_cast<int>(ms);
}

SocketResult WaitFor(int fd, short events, Deadline deadline, int* sys_errno) {
  while (true) {
    pollfd p{fd, events, 0};
    const int millis = PollMillis(deadline);
    if (millis == 0) return SocketResult::kTimeout;
    const int n = ::poll(&p, 1, millis);
    if (n > 0) return SocketResult::kOk;  // readiness, or an error the next call reports
    if (n < 0 && errno != EINTR) {
      *sys_errno = errno;
      return SocketResult::kError;
    }
  }
}

SocketResult SendAll(int fd, std::string_view bytes, Deadline deadline, int* sys_errno) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (const SocketResult r = WaitFor(fd, POLLOUT, deadline, sys_errno); r != SocketResult::kOk) return r;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      *sys_errno = n < 0 ? errno : 0;
      return SocketResult::kError;
    }
  }
  return SocketResult::kOk;
}

SocketResult ReceiveSome(int fd, char* buf, size_t capacity, size_t* size, Deadline deadline,
                         bool wait_first, int* sys_errno) {
  if (wait_first) {
    if (const SocketResult r = WaitFor(fd, POLLIN, deadline, sys_errno); r != SocketResult::kOk) return r;
  }
  while (true) {
    const ssize_t n = ::recv(fd, buf, capacity, 0);
    if (n > 0) {
      *size = static_cast<size_t>(n);
      return SocketResult::kOk;
    }
    if (n == 0) return SocketResult::kClosed;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *sys_errno = errno;
      return SocketResult::kError;
    }
    if (const SocketResult r = WaitFor(fd, POLLIN, deadline, sys_errno); r != SocketResult::kOk) return r;
  }
}

}  // namespace katsubushi::tls
