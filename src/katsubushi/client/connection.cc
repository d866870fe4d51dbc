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

#include "katsubushi/tls/client_stream.h"
#include "katsubushi/tls/socket_io.h"

namespace katsubushi::client {
namespace {

using tls::SocketResult;

// A socket operation's failure in the client's terms; `on_error` names a
// system error.
IoFailure FromSocket(SocketResult r, const Status& on_error, int sys_errno) {
  if (r == SocketResult::kTimeout) return {kTimedOut, 0, {}};
  return {on_error, r == SocketResult::kError ? sys_errno : 0, {}};
}

IoFailure FromStream(tls::StreamFailure f, bool handshaking) {
  switch (f.error) {
    case tls::StreamError::kTimeout: return {kTimedOut, 0, {}};
    case tls::StreamError::kClosed:
      return {handshaking ? kTlsClosed : kClosedEarly, 0, handshaking ? std::move(f.detail) : std::string()};
    case tls::StreamError::kSend: return {kSendFailed, f.sys_errno, {}};
    case tls::StreamError::kReceive: return {kReceiveFailed, f.sys_errno, {}};
    case tls::StreamError::kNotTls: return {kNotTls, 0, std::move(f.detail)};
    case tls::StreamError::kCertificate: return {kCertificateNotTrusted, 0, std::move(f.detail)};
    case tls::StreamError::kCertificateName: return {kCertificateNameMismatch, 0, std::move(f.detail)};
    case tls::StreamError::kTls: break;
  }
  return {kTlsFailed, 0, std::move(f.detail)};
}

// Connects one socket address; the fd on success, -1 with *failure set.
int ConnectOne(const sockaddr* address, socklen_t length, Deadline deadline, IoFailure* failure) {
  const int fd = ::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failure = {kConnectFailed, errno, {}};
    return -1;
  }
  if (::connect(fd, address, length) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      *failure = {kConnectFailed, errno, {}};
      ::close(fd);
      return -1;
    }
    int sys_errno = 0;
    if (const SocketResult r = tls::WaitFor(fd, POLLOUT, deadline, &sys_errno); r != SocketResult::kOk) {
      *failure = FromSocket(r, kConnectFailed, sys_errno);
      ::close(fd);
      return -1;
    }
    int error = 0;
    socklen_t error_length = sizeof(error);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length) != 0) error = errno;
    if (error != 0) {
      *failure = {kConnectFailed, error, {}};
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

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), tls_(std::move(other.tls_)) {}

Connection::~Connection() { Close(); }

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
    tls_ = std::move(other.tls_);
  }
  return *this;
}

void Connection::Close() {
  tls_.reset();  // before the socket it works on
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Connection Connection::Open(const ServerAddress& server, const TlsDial& tls, Deadline deadline,
                            IoFailure* failure) {
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
    *failure = {kResolveFailed, 0, {}};
    return Connection();
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ConnectOne(a->ai_addr, a->ai_addrlen, deadline, failure);
    if (fd < 0) {
      if (failure->status == kTimedOut) break;
      continue;
    }
    Connection connection(fd);
    if (server.tls && !connection.StartTls(server, tls, deadline, failure)) return Connection();
    return connection;
  }
  return Connection();
}

bool Connection::StartTls(const ServerAddress& server, const TlsDial& tls, Deadline deadline,
                          IoFailure* failure) {
  if (!tls.context) {
    *failure = {kTlsFailed, 0, "no TLS context to dial with"};
    return false;
  }
  const std::string& name = tls.server_name.empty() ? server.host : tls.server_name;
  tls::StreamFailure stream_failure;
  tls_ = tls::ClientStream::Connect(fd_, tls.context, name, tls.check_name, deadline, &stream_failure);
  if (!tls_) *failure = FromStream(std::move(stream_failure), /*handshaking=*/true);
  return tls_ != nullptr;
}

bool Connection::SendAll(std::string_view data, Deadline deadline, IoFailure* failure) {
  if (tls_) {
    tls::StreamFailure f;
    if (tls_->WriteAll(data, deadline, &f)) return true;
    *failure = FromStream(std::move(f), /*handshaking=*/false);
    return false;
  }
  int sys_errno = 0;
  const SocketResult r = tls::SendAll(fd_, data, deadline, &sys_errno);
  if (r == SocketResult::kOk) return true;
  *failure = FromSocket(r, kSendFailed, sys_errno);
  return false;
}

bool Connection::Receive(std::string* buffer, size_t max_bytes, Deadline deadline, bool* eof,
                         IoFailure* failure) {
  *eof = false;
  const size_t old_size = buffer->size();
  buffer->resize(old_size + max_bytes);
  size_t size = 0;
  bool ok;
  if (tls_) {
    tls::StreamFailure f;
    ok = tls_->Read(buffer->data() + old_size, max_bytes, &size, deadline, &f);
    if (!ok && f.error == tls::StreamError::kClosed) {
      *eof = true;
      ok = true;
    } else if (!ok) {
      *failure = FromStream(std::move(f), /*handshaking=*/false);
    }
  } else {
    int sys_errno = 0;
    // Wait first: the reply to a request just sent is almost never there yet.
    const SocketResult r =
        tls::ReceiveSome(fd_, buffer->data() + old_size, max_bytes, &size, deadline, /*wait_first=*/true, &sys_errno);
    ok = r == SocketResult::kOk || r == SocketResult::kClosed;
    *eof = r == SocketResult::kClosed;
    if (!ok) *failure = FromSocket(r, kReceiveFailed, sys_errno);
  }
  buffer->resize(old_size + (ok && !*eof ? size : 0));
  return ok;
}

}  // namespace katsubushi::client
