#include "katsubushi/tls/tls_pipe.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>

#include "katsubushi/tls/tls_client.h"

namespace katsubushi::tls {

// The BIO under a pipe's session: reads take the pipe's unread input (or ask
// to be retried when there is none), writes append to its output. It never
// blocks and never fails, so OpenSSL only ever waits for input.
struct PipeBio {
  static TlsPipe& Of(BIO* bio) { return *static_cast<TlsPipe*>(BIO_get_data(bio)); }

  static int Read(BIO* bio, char* out, size_t size, size_t* read) {
    TlsPipe& pipe = Of(bio);
    BIO_clear_retry_flags(bio);
    const size_t available = pipe.input_end_ - pipe.input_begin_;
    if (available == 0) {
      BIO_set_retry_read(bio);
      return 0;
    }
    const size_t n = std::min(size, available);
    std::memcpy(out, pipe.input_.get() + pipe.input_begin_, n);
    pipe.input_begin_ += n;
    *read = n;
    return 1;
  }

  static int Write(BIO* bio, const char* in, size_t size, size_t* written) {
    BIO_clear_retry_flags(bio);
    Of(bio).output_.append(in, size);
    *written = size;
    return 1;
  }

  static long Control(BIO*, int command, long, void*) {  // NOLINT(google-runtime-int): OpenSSL's type
    return command == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
  }

  static BIO_METHOD* Method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "katsubushi TLS pipe");
      BIO_meth_set_read_ex(m, Read);
      BIO_meth_set_write_ex(m, Write);
      BIO_meth_set_ctrl(m, Control);
      return m;
    }();
    return method;
  }
};

std::unique_ptr<TlsPipe> TlsPipe::NewServer(SSL_CTX* context) { return New(context, true); }
std::unique_ptr<TlsPipe> TlsPipe::NewClient(SSL_CTX* context) { return New(context, false); }

std::unique_ptr<TlsPipe> TlsPipe::New(SSL_CTX* context, bool server) {
  SSL* ssl = SSL_new(context);
  if (ssl == nullptr) return nullptr;
  BIO* bio = BIO_new(PipeBio::Method());
  if (bio == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  std::unique_ptr<TlsPipe> pipe(new TlsPipe(ssl));
  BIO_set_data(bio, pipe.get());
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);  // one reference, owned by the session
  if (server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
  return pipe;
}

TlsPipe::TlsPipe(SSL* ssl) : ssl_(ssl), input_(new char[kInputBytes]) {}

TlsPipe::~TlsPipe() { SSL_free(ssl_); }

std::span<char> TlsPipe::InputRoom() {
  if (input_begin_ == input_end_) input_begin_ = input_end_ = 0;
  if (input_end_ == kInputBytes && input_begin_ > 0) {
    std::memmove(input_.get(), input_.get() + input_begin_, input_end_ - input_begin_);
    input_end_ -= input_begin_;
    input_begin_ = 0;
  }
  return {input_.get() + input_end_, kInputBytes - input_end_};
}

void TlsPipe::CommitInput(size_t n) { input_end_ += n; }

void TlsPipe::ConsumeOutput(size_t n) {
  output_.erase(0, n);
  if (output_.empty() && output_.capacity() > kKeptOutputBytes) std::string().swap(output_);
}

TlsPipe::Status TlsPipe::Finish(int result) {
  const int error = SSL_get_error(ssl_, result);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return Status::kWantInput;
    case SSL_ERROR_ZERO_RETURN:
      return Status::kClosed;
    default:
      break;
  }
  failure_.ssl_error = error;
  failure_.code = ERR_peek_last_error();
  failure_.text = DrainSslErrors("");  // empties the queue
  return Status::kFailed;
}

TlsPipe::Status TlsPipe::Handshake() {
  ERR_clear_error();
  const int result = SSL_do_handshake(ssl_);
  return result == 1 ? Status::kDone : Finish(result);
}

TlsPipe::Status TlsPipe::Read(std::span<char> out, size_t* n) {
  ERR_clear_error();
  const int result = SSL_read_ex(ssl_, out.data(), out.size(), n);
  return result == 1 ? Status::kDone : Finish(result);
}

TlsPipe::Status TlsPipe::Write(std::span<const char> in, size_t* n) {
  *n = 0;
  while (*n < in.size()) {  // a partial write is one record; the BIO takes them all
    ERR_clear_error();
    size_t written = 0;
    const int result = SSL_write_ex(ssl_, in.data() + *n, in.size() - *n, &written);
    if (result != 1) return Finish(result);
    *n += written;
  }
  return Status::kDone;
}

}  // namespace katsubushi::tls
