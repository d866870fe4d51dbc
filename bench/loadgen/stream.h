// The load generator's byte stream: one client socket, plain or TLS, with
// the same calls for both so the epoll loop in main.cc does not fork on TLS.
//
// Works over blocking sockets (the idle holder, the set-up of the pipelined
// run) and non-blocking ones (the run itself): on a non-blocking socket every
// call may answer kWouldBlock, and the caller retries when epoll reports the
// socket ready again. With TLS a write can need a read and a read a write
// (OpenSSL's WANT_READ/WANT_WRITE), so the caller registers for both
// directions (edge-triggered) and retries both calls on any readiness.
//
// Single-threaded. A Stream owns its file descriptor and its SSL object; the
// TlsContext must outlive every Stream made with it.
#ifndef KATSUBUSHI_BENCH_LOADGEN_STREAM_H_
#define KATSUBUSHI_BENCH_LOADGEN_STREAM_H_

#include <cstddef>
#include <memory>
#include <string>

#include <openssl/types.h>

namespace katsubushi::loadgen {

enum class Io {
  kOk,          // done; `bytes` moved (a handshake moves none)
  kWouldBlock,  // try again when the socket is ready
  kClosed,      // the peer closed (EOF or TLS close_notify)
  kError,       // see Stream::error()
};

struct IoResult {
  Io status;
  size_t bytes = 0;
};

// The client side of TLS for every connection of a run. No certificate
// check unless a CA file is given: a benchmark talks to its own servers.
class TlsContext {
 public:
  // nullptr and *error set when OpenSSL refuses the CA file. `lean` frees
  // each connection's record buffers while it is idle (thousands of held
  // connections), at the cost of an allocation per record in a busy run.
  static std::unique_ptr<TlsContext> Create(const std::string& ca_file, bool lean, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

class Stream {
 public:
  // Takes `fd`, a connected (or connecting) socket. `tls` null: plaintext.
  Stream(int fd, const TlsContext* tls);
  ~Stream();  // closes the socket, after a close_notify if TLS was set up
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int fd() const { return fd_; }
  bool tls() const { return wants_tls_; }

  // Advances the TLS client handshake; kOk at once for plaintext. Write and
  // Read before the handshake is done advance it and answer kWouldBlock.
  IoResult Handshake();
  // Writes a prefix of [data, data+len). After kWouldBlock the next call
  // must pass at least the same bytes again (OpenSSL's rule for a retried
  // SSL_write; the buffer may move).
  IoResult Write(const char* data, size_t len);
  IoResult Read(char* buf, size_t len);

  // Why the last call answered kError.
  const std::string& error() const { return error_; }

 private:
  // Maps a failed OpenSSL call to an IoResult, setting error_ for kError.
  IoResult TlsResult(int ret, const char* what);

  int fd_;
  bool wants_tls_ = false;
  SSL* ssl_ = nullptr;  // null with wants_tls_ when SSL_new failed
  bool handshake_done_ = false;
  // Bytes a SSL_write that would block was given; the retry passes as many.
  size_t write_retry_len_ = 0;
  std::string error_;
};

}  // namespace katsubushi::loadgen

#endif  // KATSUBUSHI_BENCH_LOADGEN_STREAM_H_
