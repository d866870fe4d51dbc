#include "katsubushi/tls/client_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <span>

#include "katsubushi/tls/tls_pipe.h"

namespace katsubushi::tls {
namespace {

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

ClientStream::ClientStream(int fd, std::unique_ptr<TlsPipe> pipe) : fd_(fd), pipe_(std::move(pipe)) {}
ClientStream::~ClientStream() = default;

std::unique_ptr<ClientStream> ClientStream::Connect(int fd, const ClientContext& context, std::string_view name,
                                                    bool check_name, Deadline deadline, StreamFailure* failure) {
  ERR_clear_error();
  std::unique_ptr<TlsPipe> pipe = TlsPipe::NewClient(context.get());
  if (!pipe) {
    *failure = {StreamError::kTls, 0, DrainSslErrors("cannot start a TLS session")};
    return nullptr;
  }
  std::string error;
  if (!PrepareClientSession(pipe->ssl(), name, check_name, &error)) {
    *failure = {StreamError::kTls, 0, std::move(error)};
    return nullptr;
  }
  std::unique_ptr<ClientStream> stream(new ClientStream(fd, std::move(pipe)));
  if (!stream->Handshake(deadline, failure)) return nullptr;
  return stream;
}

bool ClientStream::Flush(Deadline deadline, StreamFailure* failure) {
  if (pipe_->output().empty()) return true;
  int sys_errno = 0;
  const SocketResult r = SendAll(fd_, pipe_->output(), deadline, &sys_errno);
  if (r != SocketResult::kOk) {
    *failure = FromSocket(r, StreamError::kSend, sys_errno);
    return false;
  }
  pipe_->ConsumeOutput(pipe_->output().size());
  return true;
}

bool ClientStream::Fill(Deadline deadline, bool handshaking, StreamFailure* failure) {
  const std::span<char> room = pipe_->InputRoom();
  size_t size = 0;
  int sys_errno = 0;
  const SocketResult r = ReceiveSome(fd_, room.data(), room.size(), &size, deadline, /*wait_first=*/true, &sys_errno);
  if (r != SocketResult::kOk) {
    *failure = FromSocket(r, StreamError::kReceive, sys_errno);
    if (r == SocketResult::kClosed && handshaking) {
      failure->detail = heard_from_peer_ ? "the server closed the connection during the TLS handshake"
                                         : "the server closed the connection at the TLS handshake (a plaintext port?)";
    }
    return false;
  }
  if (handshaking && !heard_from_peer_ && !StartsLikeTls(static_cast<unsigned char>(room[0]))) {
    *failure = {StreamError::kNotTls, 0, Quote(room.data(), size)};
    return false;
  }
  heard_from_peer_ = true;
  pipe_->CommitInput(size);
  return true;
}

bool ClientStream::Handshake(Deadline deadline, StreamFailure* failure) {
  while (true) {
    const TlsPipe::Status status = pipe_->Handshake();
    if (!Flush(deadline, failure)) return false;
    if (status == TlsPipe::Status::kDone) return true;
    if (status == TlsPipe::Status::kWantInput) {
      if (!Fill(deadline, /*handshaking=*/true, failure)) return false;
      continue;
    }
    const long verify = SSL_get_verify_result(pipe_->ssl());
    if (verify != X509_V_OK) {
      const bool name = verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
      *failure = {name ? StreamError::kCertificateName : StreamError::kCertificate, 0,
                  X509_verify_cert_error_string(verify)};
    } else {
      *failure = {StreamError::kTls, 0, Reason("the server refused the handshake")};
    }
    return false;
  }
}

bool ClientStream::WriteAll(std::string_view bytes, Deadline deadline, StreamFailure* failure) {
  size_t written = 0;
  if (pipe_->Write(bytes, &written) != TlsPipe::Status::kDone) {
    // The pipe's buffers never refuse a write; anything else is the session's end.
    *failure = {StreamError::kTls, 0, Reason("the TLS session ended")};
    return false;
  }
  return Flush(deadline, failure);
}

bool ClientStream::Read(char* buf, size_t capacity, size_t* size, Deadline deadline, StreamFailure* failure) {
  while (true) {
    const TlsPipe::Status status = pipe_->Read({buf, capacity}, size);
    if (status == TlsPipe::Status::kDone) return true;
    // A TLS 1.3 session ticket or key update may want an answer sent.
    if (!Flush(deadline, failure)) return false;
    if (status == TlsPipe::Status::kWantInput) {
      // A raw close without close_notify ends here as kClosed: the replies
      // read over these streams frame themselves, so a truncation shows.
      if (!Fill(deadline, /*handshaking=*/false, failure)) return false;
      continue;
    }
    if (status == TlsPipe::Status::kClosed) {
      *failure = {StreamError::kClosed, 0, "the server closed the TLS session"};
      return false;
    }
    // With TLS 1.3 a server refuses a client certificate after the client's
    // handshake is done: its alert arrives here.
    *failure = {StreamError::kTls, 0, Reason("the TLS session failed")};
    return false;
  }
}

std::string ClientStream::Reason(std::string_view what) const {
  const std::string& said = pipe_->failure().text;
  return said.empty() ? std::string(what) : said;
}

}  // namespace katsubushi::tls
