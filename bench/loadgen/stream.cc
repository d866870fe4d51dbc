#include "stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace katsubushi::loadgen {
namespace {

// OpenSSL's oldest queued error as text, and the queue emptied.
std::string TakeOpenSslError(const std::string& what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return what;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return what + ": " + text;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::Create(const std::string& ca_file, bool lean, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    *error = TakeOpenSslError("SSL_CTX_new");
    return nullptr;
  }
  auto context = std::unique_ptr<TlsContext>(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A connection appends requests to its output while a write waits, so the
  // buffer of a retried write may have moved and a write may take a prefix.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (lean) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // A peer closing without close_notify is an ordinary EOF here (memcached
  // and our server both may), not an error.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // The client never offers a saved session (no SSL_set_session), so every
  // new connection is a full handshake: the cost the handshake rate is about.
  if (ca_file.empty()) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
      *error = TakeOpenSslError("cannot load the CA file " + ca_file);
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Stream::Stream(int fd, const TlsContext* tls) : fd_(fd) {
  if (tls == nullptr) return;
  wants_tls_ = true;
  ssl_ = SSL_new(tls->get());
  if (ssl_ == nullptr) {
    error_ = TakeOpenSslError("SSL_new");
    return;
  }
  SSL_set_fd(ssl_, fd_);
  SSL_set_connect_state(ssl_);
}

Stream::~Stream() {
  if (ssl_ != nullptr) {
    // One close_notify, not waited for: the socket closes right after. A
    // failure here only means the peer is gone already.
    if (handshake_done_) SSL_shutdown(ssl_);
    ERR_clear_error();
    SSL_free(ssl_);
  }
  if (fd_ >= 0) ::close(fd_);
}

IoResult Stream::Handshake() {
  if (!wants_tls_ || handshake_done_) return {Io::kOk};
  if (ssl_ == nullptr) return {Io::kError};  // SSL_new failed: error_ says why
  ERR_clear_error();
  const int ret = SSL_connect(ssl_);
  if (ret == 1) {
    handshake_done_ = true;
    return {Io::kOk};
  }
  return TlsResult(ret, "handshake");
}

IoResult Stream::Write(const char* data, size_t len) {
  if (!wants_tls_) {
    const ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL);
    if (n >= 0) return {Io::kOk, static_cast<size_t>(n)};
    if (errno == EAGAIN || errno == EINTR) return {Io::kWouldBlock};
    error_ = std::string("send: ") + std::strerror(errno);
    return {Io::kError};
  }
  if (!handshake_done_) {
    const IoResult handshake = Handshake();
    if (handshake.status != Io::kOk) return handshake;
  }
  // A retried SSL_write passes exactly the count it passed before.
  const size_t chunk = write_retry_len_ != 0 ? write_retry_len_ : len;
  ERR_clear_error();
  const int ret = SSL_write(ssl_, data, static_cast<int>(chunk));
  if (ret > 0) {
    write_retry_len_ = 0;
    return {Io::kOk, static_cast<size_t>(ret)};
  }
  const IoResult result = TlsResult(ret, "write");
  if (result.status == Io::kWouldBlock) write_retry_len_ = chunk;
  return result;
}

IoResult Stream::Read(char* buf, size_t len) {
  if (!wants_tls_) {
    const ssize_t n = ::recv(fd_, buf, len, 0);
    if (n > 0) return {Io::kOk, static_cast<size_t>(n)};
    if (n == 0) return {Io::kClosed};
    if (errno == EAGAIN || errno == EINTR) return {Io::kWouldBlock};
    error_ = std::string("recv: ") + std::strerror(errno);
    return {Io::kError};
  }
  if (!handshake_done_) {
    const IoResult handshake = Handshake();
    if (handshake.status != Io::kOk) return handshake;
  }
  ERR_clear_error();
  const int ret = SSL_read(ssl_, buf, static_cast<int>(len));
  if (ret > 0) return {Io::kOk, static_cast<size_t>(ret)};
  return TlsResult(ret, "read");
}

IoResult Stream::TlsResult(int ret, const char* what) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return {Io::kWouldBlock};
    case SSL_ERROR_ZERO_RETURN:
      return {Io::kClosed};
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        if (saved_errno == 0) return {Io::kClosed};
        error_ = std::string("TLS ") + what + ": " + std::strerror(saved_errno);
        return {Io::kError};
      }
      [[fallthrough]];
    default:
      error_ = TakeOpenSslError(std::string("TLS ") + what);
      return {Io::kError};
  }
}

}  // namespace katsubushi::loadgen
