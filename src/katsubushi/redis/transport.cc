#include "katsubushi/redis/transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace katsubushi::redis {
namespace {

int MillisLeft(Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX));
}

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
  pollfd pfd{fd, POLLOUT, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, MillisLeft(deadline));
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) {
    *error = ready == 0 ? "connect: timed out" : Errno("connect");
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

}  // namespace

struct Transport::Tls {
  std::unique_ptr<SSL, void (*)(SSL*)> ssl{nullptr, SSL_free};
  BIO* in = nullptr;   // bytes from the peer, for OpenSSL to read (owned by ssl)
  BIO* out = nullptr;  // bytes OpenSSL wrote, for us to send (owned by ssl)
};

Transport::Transport(int fd) : fd_(fd) {}

Transport::~Transport() {
  tls_.reset();
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
  if (tls && !transport->Handshake(host, verify_peer, tls, deadline, error)) return nullptr;
  return transport;
}

bool Transport::WaitFor(short events, Deadline deadline, std::string* error) const {
  pollfd pfd{fd_, events, 0};
  for (;;) {
    const int ready = ::poll(&pfd, 1, MillisLeft(deadline));
    if (ready > 0) return true;
    if (ready == 0) {
      *error = "timed out waiting for Redis";
      return false;
    }
    if (errno != EINTR) {
      *error = Errno("poll");
      return false;
    }
  }
}

bool Transport::SendRaw(std::string_view bytes, Deadline deadline, std::string* error) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(POLLOUT, deadline, error)) return false;
    } else if (n < 0 && errno != EINTR) {
      *error = Errno("send to Redis");
      return false;
    }
  }
  return true;
}

Transport::ReadResult Transport::RecvRaw(char* buf, size_t capacity, size_t* size, Deadline deadline,
                                         std::string* error) {
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, capacity, 0);
    if (n > 0) {
      *size = static_cast<size_t>(n);
      return ReadResult::kData;
    }
    if (n == 0) {
      *error = "Redis closed the connection";
      return ReadResult::kClosed;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *error = Errno("receive from Redis");
      return ReadResult::kError;
    }
    if (!WaitFor(POLLIN, deadline, error)) {
      return MillisLeft(deadline) == 0 ? ReadResult::kTimeout : ReadResult::kError;
    }
  }
}

bool Transport::FlushTls(Deadline deadline, std::string* error) {
  char buf[16 * 1024];
  for (;;) {
    const int n = BIO_read(tls_->out, buf, sizeof buf);
    if (n <= 0) return true;
    if (!SendRaw(std::string_view(buf, static_cast<size_t>(n)), deadline, error)) return false;
  }
}

Transport::ReadResult Transport::FillTls(Deadline deadline, std::string* error) {
  char buf[16 * 1024];
  size_t size = 0;
  const ReadResult r = RecvRaw(buf, sizeof buf, &size, deadline, error);
  if (r == ReadResult::kData) BIO_write(tls_->in, buf, static_cast<int>(size));
  return r;
}

bool Transport::Handshake(std::string_view host, bool verify_peer, const tls::ClientContext& context,
                          Deadline deadline, std::string* error) {
  ERR_clear_error();
  tls_ = std::make_unique<Tls>();
  tls_->ssl.reset(SSL_new(context.get()));
  if (!tls_->ssl) {
    *error = tls::DrainSslErrors("cannot start a TLS session");
    return false;
  }
  tls_->in = BIO_new(BIO_s_mem());
  tls_->out = BIO_new(BIO_s_mem());
  SSL_set_bio(tls_->ssl.get(), tls_->in, tls_->out);
  SSL_set_connect_state(tls_->ssl.get());
  if (!tls::PrepareClientSession(tls_->ssl.get(), host, verify_peer, error)) return false;
  for (;;) {
    const int rc = SSL_do_handshake(tls_->ssl.get());
    if (!FlushTls(deadline, error)) return false;
    if (rc == 1) return true;
    const int reason = SSL_get_error(tls_->ssl.get(), rc);
    if (reason == SSL_ERROR_WANT_READ) {
      const ReadResult r = FillTls(deadline, error);
      if (r == ReadResult::kData) continue;
      *error = "TLS handshake: " + *error;
      return false;
    }
    const long verify = SSL_get_verify_result(tls_->ssl.get());
    if (verify != X509_V_OK) {
      *error = std::string("TLS handshake: certificate verify failed: ") +
               X509_verify_cert_error_string(verify);
      ERR_clear_error();
    } else {
      *error = "TLS handshake: " + tls::DrainSslErrors("the server refused the handshake");
    }
    return false;
  }
}

bool Transport::WriteAll(std::string_view bytes, Deadline deadline, std::string* error) {
  if (!tls_) return SendRaw(bytes, deadline, error);
  ERR_clear_error();
  while (!bytes.empty()) {
    const int n = SSL_write(tls_->ssl.get(), bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX)));
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    // Memory buffers never refuse a write; anything else is the session's end.
    *error = "TLS write: " + tls::DrainSslErrors("the TLS session ended");
    return false;
  }
  return FlushTls(deadline, error);
}

Transport::ReadResult Transport::Read(char* buf, size_t capacity, size_t* size, Deadline deadline,
                                      std::string* error) {
  if (!tls_) return RecvRaw(buf, capacity, size, deadline, error);
  ERR_clear_error();
  for (;;) {
    const int n = SSL_read(tls_->ssl.get(), buf, static_cast<int>(std::min<size_t>(capacity, INT32_MAX)));
    if (n > 0) {
      *size = static_cast<size_t>(n);
      return ReadResult::kData;
    }
    const int reason = SSL_get_error(tls_->ssl.get(), n);
    // A TLS 1.3 session ticket or key update may want an answer sent.
    if (!FlushTls(deadline, error)) return ReadResult::kError;
    if (reason == SSL_ERROR_WANT_READ) {
      const ReadResult r = FillTls(deadline, error);
      if (r != ReadResult::kData) return r;
      continue;
    }
    if (reason == SSL_ERROR_ZERO_RETURN) {
      *error = "Redis closed the TLS session";
      return ReadResult::kClosed;
    }
    *error = "TLS read: " + tls::DrainSslErrors("the TLS session failed");
    return ReadResult::kError;
  }
}

}  // namespace katsubushi::redis
