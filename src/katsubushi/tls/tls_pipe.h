// TlsPipe: one TLS session with no socket of its own, server or client: the
// one TLS byte pump of this process (the fronts' TlsStream, and ClientStream
// under the Redis client and katsubushi::Client). The owner moves bytes:
// ciphertext read from the peer goes into InputRoom()/CommitInput(), and what
// OpenSSL wrote for the peer waits in output() until the owner has sent it.
// Between the two, Handshake(), Read() and Write() run OpenSSL's state
// machine, each answering what it needs next. Keeping the I/O outside lets
// the server's event loop read speculatively into the pipe (no readiness
// wait per request), lets a blocking client bound every wait by a deadline,
// and keeps an idle session small: OpenSSL's record buffers are released
// while empty (SSL_MODE_RELEASE_BUFFERS), and the pipe holds only a small
// input buffer and what is not yet sent.
//
// Not thread-safe: one owner, one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

struct ssl_ctx_st;
struct ssl_st;

namespace katsubushi::tls {

class TlsPipe {
 public:
  // Ciphertext from the peer waiting for OpenSSL; a record larger than this
  // is assembled by OpenSSL's own (released when empty) buffer.
  static constexpr size_t kInputBytes = 4096;
  // Output kept between writes beyond this is given back to the allocator.
  static constexpr size_t kKeptOutputBytes = 16 * 1024;

  enum class Status {
    kDone,       // the call did what it was asked
    kWantInput,  // more ciphertext from the peer first (send output() too)
    kClosed,     // the peer closed the session (close_notify)
    kFailed,     // a TLS error: the session cannot go on (send output(): an alert)
  };

  // What OpenSSL said of a kFailed call.
  struct Failure {
    int ssl_error = 0;         // SSL_get_error()'s answer
    unsigned long code = 0;    // the last code on OpenSSL's error queue; 0: none
    std::string text;          // the queue as one line, for a message; empty: none
  };

  // A session of `context`, as the server or as the client. Null when
  // OpenSSL cannot make one.
  static std::unique_ptr<TlsPipe> NewServer(ssl_ctx_st* context);
  static std::unique_ptr<TlsPipe> NewClient(ssl_ctx_st* context);
  ~TlsPipe();
  TlsPipe(const TlsPipe&) = delete;
  TlsPipe& operator=(const TlsPipe&) = delete;

  // Where the next ciphertext read from the peer goes; then CommitInput(n).
  std::span<char> InputRoom();
  void CommitInput(size_t n);

  Status Handshake();
  // Plaintext into `out`; *n set with kDone (never 0 then).
  Status Read(std::span<char> out, size_t* n);
  // Plaintext to the peer: all of `in` becomes records in output() (*n = in.size()).
  Status Write(std::span<const char> in, size_t* n);

  // Ciphertext for the peer, to be sent in order; ConsumeOutput once sent.
  const std::string& output() const { return output_; }
  void ConsumeOutput(size_t n);

  // After kFailed: what OpenSSL said (tls_server.h classifies it for the
  // handshake failure metric).
  const Failure& failure() const { return failure_; }
  ssl_st* ssl() const { return ssl_; }

 private:
  static std::unique_ptr<TlsPipe> New(ssl_ctx_st* context, bool server);
  explicit TlsPipe(ssl_st* ssl);
  // The status of a call that returned `result`, keeping OpenSSL's words for
  // a failure.
  Status Finish(int result);

  friend struct PipeBio;
  ssl_st* const ssl_;
  std::unique_ptr<char[]> input_;
  size_t input_begin_ = 0;  // unread ciphertext is input_[input_begin_, input_end_)
  size_t input_end_ = 0;
  std::string output_;
  Failure failure_;
};

}  // namespace katsubushi::tls
