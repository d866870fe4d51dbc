#include "katsubushi/redis/transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "katsubushi/tls/socket_io.h"

namespace katsubushi::redis {
namespace {

std::string Errno(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Connects a non-blocking socket to one resolved address by the deadline.
int ConnectOne(const addrinfo& ai, Deadline deadline, std::string* error) {
  const int fd = ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0) {
    *error = Errno("socket");
    return -1;
  }
  if (::connect(fd, ai.ai_addr, ai.ai_addrlen) != 0 && errno != EINPROGRESS) {
    *error = Errno("connect");
    ::close(fd);
    return -1;
  }
  int sys_errno = 0;
  if (const tls::SocketResult ready = tls::WaitFor(fd, POLLOUT, deadline, &sys_errno);
      ready != tls::SocketResult::kOk) {
    *error = ready == tls::SocketResult::kTimeout ? "connect: timed out"
                                                  : std::string("connect: ") + std::strerror(sys_errno);
    ::close(fd);
    return -1;
  }
  int so_error = 0;
  socklen_t len = sizeof so_error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    *error = std::string("connect: ") + std::strerror(so_error);
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  return fd;
}

std::string Reason(const std::string& detail, std::string_view fallback) {
  return detail.empty() ? std::string(fallback) : detail;
}

// A stream failure in the words the Redis client and its callers know
// (RedisFailure() looks for "certificate verify failed" and "TLS").
std::string Describe(const tls::StreamFailure& f, std::string_view during) {
  switch (f.error) {
    case tls::StreamError::kTimeout: return "timed out waiting for Redis";
    case tls::StreamError::kClosed:
      return during.empty() ? "Redis closed the connection" : std::string(during) + Reason(f.detail, "Redis closed the connection");
    case tls::StreamError::kSend: return std::string("send to Redis: ") + std::strerror(f.sys_errno);
    case tls::StreamError::kReceive: return std::string("receive from Redis: ") + std::strerror(f.sys_errno);
    case tls::StreamError::kCertificate:
    case tls::StreamError::kCertificateName:
      return std::string(during) + "certificate verify failed: " + f.detail;
    case tls::StreamError::kNotTls:
    case tls::StreamError::kTls: break;
  }
  return std::string(during.empty() ? "TLS: " : during) + f.detail;
}

Transport::ReadResult ResultOf(tls::StreamError e) {
  switch (e) {
    case tls::StreamError::kTimeout: return Transport::ReadResult::kTimeout;
    case tls::StreamError::kClosed: return Transport::ReadResult::kClosed;
    default: return Transport::ReadResult::kError;
  }
}

}  // namespace

Transport::Transport(int fd) : fd_(fd) {}

Transport::~Transport() {
  tls_.reset();  // before the socket it works on
  ::close(fd_);
}

std::unique_ptr<Transport> Transport::Connect(const std::string& host, uint16_t port,
                                              const tls::ClientContext& tls, bool verify_peer,
                                              Deadline deadline, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    *error = "resolve " + host + ": " + ::gai_strerror(rc);
    return nullptr;
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
  int fd = -1;
  for (const addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ConnectOne(*ai, deadline, error);
  }
  if (fd < 0) return nullptr;
  std::unique_ptr<Transport> transport(new Transport(fd));
  if (tls) {
    tls::StreamFailure failure;
    transport->tls_ = tls::ClientStream::Connect(fd, tls, host, verify_peer, deadline, &failure);
    if (!transport->tls_) {
      *error = Describe(failure, "TLS handshake: ");
      return nullptr;
    }
  }
  return transport;
}

bool Transport::WriteAll(std::string_view bytes, Deadline deadline, std::string* error) {
  if (tls_) {
    tls::StreamFailure failure;
    if (tls_->WriteAll(bytes, deadline, &failure)) return true;
    *error = Describe(failure, "");
    return false;
  }
  int sys_errno = 0;
  switch (tls::SendAll(fd_, bytes, deadline, &sys_errno)) {
    case tls::SocketResult::kOk: return true;
    case tls::SocketResult::kTimeout: *error = "timed out waiting for Redis"; return false;
    default: *error = std::string("send to Redis: ") + std::strerror(sys_errno); return false;
  }
}

Transport::ReadResult Transport::Read(char* buf, size_t capacity, size_t* size, Deadline deadline,
                                      std::string* error) {
  if (tls_) {
    tls::StreamFailure failure;
    if (tls_->Read(buf, capacity, size, deadline, &failure)) return ReadResult::kData;
    *error = Describe(failure, "");
    return ResultOf(failure.error);
  }
  int sys_errno = 0;
  switch (tls::ReceiveSome(fd_, buf, capacity, size, deadline, /*wait_first=*/false, &sys_errno)) {
    case tls::SocketResult::kOk: return ReadResult::kData;
    case tls::SocketResult::kTimeout: *error = "timed out waiting for Redis"; return ReadResult::kTimeout;
    case tls::SocketResult::kClosed: *error = "Redis closed the connection"; return ReadResult::kClosed;
    case tls::SocketResult::kError: break;
  }
  *error = std::string("receive from Redis: ") + std::strerror(sys_errno);
  return ReadResult::kError;
}

}  // namespace katsubushi::redis
