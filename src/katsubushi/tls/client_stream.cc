#include "katsubushi/tls/client_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <climits>

namespace katsubushi::tls {
namespace {

// One TLS record at most: what one recv() or one flush moves.
constexpr size_t kChunkBytes = 16 * 1024 + 512;
// How much of a plaintext peer's answer a failure quotes.
constexpr size_t kQuotedBytes = 40;

// TLS record content types (RFC 8446 5.1): change_cipher_spec, alert,
// handshake, application_data. A peer speaking TLS starts with one of them.
bool StartsLikeTls(unsigned char first) { return first >= 20 && first <= 23; }

// The first line of what a plaintext peer sent, printable, for the failure.
std::string Quote(const char* data, size_t size) {
  std::string out = "the server answered \"";
  for (size_t i = 0; i < size && i < kQuotedBytes; ++i) {
    const char c = data[i];
    if (c == '\r' || c == '\n') break;
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return out + "\" (a plaintext port?)";
}

StreamFailure FromSocket(SocketResult r, StreamError on_error, int sys_errno) {
  switch (r) {
    case SocketResult::kTimeout: return {StreamError::kTimeout, 0, {}};
    case SocketResult::kClosed: return {StreamError::kClosed, 0, {}};
    default: return {on_error, sys_errno, {}};
  }
}

}  // namespace

struct ClientStream::Session {
  std::unique_ptr<SSL, void (*)(SSL*)> ssl{nullptr, SSL_free};
  BIO* in = nullptr;   // bytes from the peer, for OpenSSL to read (owned by ssl)
  BIO* out = nullptr;  // bytes OpenSSL wrote, for us to send (owned by ssl)
};

ClientStream::ClientStream(int fd, std::unique_ptr<Session> session) : fd_(fd), session_(std::move(session)) {}
ClientStream::~ClientStream() = default;

std::unique_ptr<ClientStream> ClientStream::Connect(int fd, const ClientContext& context, std::string_view name,
                                                    bool check_name, Deadline deadline, StreamFailure* failure) {
  ERR_clear_error();
  auto session = std::make_unique<Session>();
  session->ssl.reset(SSL_new(context.get()));
  if (!session->ssl) {
    *failure = {StreamError::kTls, 0, DrainSslErrors("cannot start a TLS session")};
    return nullptr;
  }
  session->in = BIO_new(BIO_s_mem());
  session->out = BIO_new(BIO_s_mem());
  if (session->in == nullptr || session->out == nullptr) {
    BIO_free(session->in);
    BIO_free(session->out);
    *failure = {StreamError::kTls, 0, DrainSslErrors("cannot start a TLS session")};
    return nullptr;
  }
  SSL_set_bio(session->ssl.get(), session->in, session->out);
  SSL_set_connect_state(session->ssl.get());
  std::string error;
  if (!PrepareClientSession(session->ssl.get(), name, check_name, &error)) {
    *failure = {StreamError::kTls, 0, std::move(error)};
    return nullptr;
  }
  std::unique_ptr<ClientStream> stream(new ClientStream(fd, std::move(session)));
  if (!stream->Handshake(deadline, failure)) return nullptr;
  return stream;
}

bool ClientStream::Flush(Deadline deadline, StreamFailure* failure) {
  char buf[kChunkBytes];
  while (true) {
    const int n = BIO_read(session_->out, buf, sizeof buf);
    if (n <= 0) return true;
    int sys_errno = 0;
    const SocketResult r = SendAll(fd_, std::string_view(buf, static_cast<size_t>(n)), deadline, &sys_errno);
    if (r != SocketResult::kOk) {
      *failure = FromSocket(r, StreamError::kSend, sys_errno);
      return false;
    }
  }
}

bool ClientStream::Fill(Deadline deadline, bool handshaking, StreamFailure* failure) {
  char buf[kChunkBytes];
  size_t size = 0;
  int sys_errno = 0;
  const SocketResult r = ReceiveSome(fd_, buf, sizeof buf, &size, deadline, /*wait_first=*/true, &sys_errno);
  if (r != SocketResult::kOk) {
    *failure = FromSocket(r, StreamError::kReceive, sys_errno);
    if (r == SocketResult::kClosed && handshaking) {
      failure->detail = heard_from_peer_ ? "the server closed the connection during the TLS handshake"
                                         : "the server closed the connection at the TLS handshake (a plaintext port?)";
    }
    return false;
  }
  if (handshaking && !heard_from_peer_ && !StartsLikeTls(static_cast<unsigned char>(buf[0]))) {
    *failure = {StreamError::kNotTls, 0, Quote(buf, size)};
    return false;
  }
  heard_from_peer_ = true;
  BIO_write(session_->in, buf, static_cast<int>(size));
  return true;
}

bool ClientStream::Handshake(Deadline deadline, StreamFailure* failure) {
  SSL* ssl = session_->ssl.get();
  while (true) {
    const int rc = SSL_do_handshake(ssl);
    if (!Flush(deadline, failure)) return false;
    if (rc == 1) return true;
    if (SSL_get_error(ssl, rc) == SSL_ERROR_WANT_READ) {
      if (!Fill(deadline, /*handshaking=*/true, failure)) return false;
      continue;
    }
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      const bool name = verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
      *failure = {name ? StreamError::kCertificateName : StreamError::kCertificate, 0,
                  X509_verify_cert_error_string(verify)};
      ERR_clear_error();
    } else {
      *failure = {StreamError::kTls, 0, DrainSslErrors("the server refused the handshake")};
    }
    return false;
  }
}

bool ClientStream::WriteAll(std::string_view bytes, Deadline deadline, StreamFailure* failure) {
  ERR_clear_error();
  while (!bytes.empty()) {
    const int n = SSL_write(session_->ssl.get(), bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX)));
    if (n <= 0) {
      // Memory buffers never refuse a write; anything else is the session's end.
      *failure = {StreamError::kTls, 0, DrainSslErrors("the TLS session ended")};
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Flush(deadline, failure);
}

bool ClientStream::Read(char* buf, size_t capacity, size_t* size, Deadline deadline, StreamFailure* failure) {
  SSL* ssl = session_->ssl.get();
  ERR_clear_error();
  while (true) {
    const int n = SSL_read(ssl, buf, static_cast<int>(std::min<size_t>(capacity, INT_MAX)));
    if (n > 0) {
      *size = static_cast<size_t>(n);
      return true;
    }
    const int reason = SSL_get_error(ssl, n);
    // A TLS 1.3 session ticket or key update may want an answer sent.
    if (!Flush(deadline, failure)) return false;
    if (reason == SSL_ERROR_WANT_READ) {
      // A raw close without close_notify ends here as kClosed: the replies
      // read over these streams frame themselves, so a truncation shows.
      if (!Fill(deadline, /*handshaking=*/false, failure)) return false;
      continue;
    }
    if (reason == SSL_ERROR_ZERO_RETURN) {
      *failure = {StreamError::kClosed, 0, "the server closed the TLS session"};
      return false;
    }
    // With TLS 1.3 a server refuses a client certificate after the client's
    // handshake is done: its alert arrives here.
    *failure = {StreamError::kTls, 0, DrainSslErrors("the TLS session failed")};
    return false;
  }
}

}  // namespace katsubushi::tls
