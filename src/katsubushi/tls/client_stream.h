// ClientStream: the client end of a TLS session on a connected non-blocking
// socket, for every TLS connection this process dials (the Redis transport,
// katsubushi::Client's tls:// and https:// servers).
//
// OpenSSL works on memory buffers (a TlsPipe, as the server's fronts) and
// this class moves the bytes with socket_io.h: every wait ends by the caller's deadline (a server that stalls
// the handshake costs no more than the time allowed), every send is
// send(MSG_NOSIGNAL) (never a SIGPIPE in an embedding program). Owning the
// byte pump also lets a failure say what happened in the peer's terms:
//
//   kNotTls           the first bytes back were not a TLS record (a plaintext
//                     server: "ERROR", "HTTP/1.1 400"...); known at once
//   kClosed           the peer closed (during the handshake: most often a
//                     plaintext port that drops what it cannot read)
//   kCertificate      the peer's chain did not verify against the CA
//   kCertificateName  the chain verified but is for another name
//   kTls              OpenSSL refused (an alert from the peer, such as a
//                     missing client certificate; a protocol error)
//   kTimeout, kSend, kReceive   the socket's own failures
//
// Not thread-safe: one owner at a time. The socket is the caller's; it must
// outlive the stream.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "katsubushi/tls/socket_io.h"
#include "katsubushi/tls/tls_client.h"

namespace katsubushi::tls {

class TlsPipe;

enum class StreamError { kTimeout, kClosed, kSend, kReceive, kNotTls, kCertificate, kCertificateName, kTls };

struct StreamFailure {
  StreamError error = StreamError::kTls;
  int sys_errno = 0;   // kSend, kReceive
  std::string detail;  // OpenSSL's reason, the verify result, or what a plaintext peer said
};

class ClientStream {
 public:
  // Starts a session of `context` on `fd` and shakes hands by `deadline`.
  // `name` goes out as SNI (a DNS name) and, with `check_name`, must be in
  // the certificate (the chain is verified whenever the context says so).
  // Null with *failure set.
  static std::unique_ptr<ClientStream> Connect(int fd, const ClientContext& context, std::string_view name,
                                               bool check_name, Deadline deadline, StreamFailure* failure);
  ~ClientStream();
  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;

  bool WriteAll(std::string_view bytes, Deadline deadline, StreamFailure* failure);
  // Up to `capacity` plaintext bytes into `buf`, waiting for at least one;
  // *size is set on success.
  bool Read(char* buf, size_t capacity, size_t* size, Deadline deadline, StreamFailure* failure);

 private:
  ClientStream(int fd, std::unique_ptr<TlsPipe> pipe);
  bool Handshake(Deadline deadline, StreamFailure* failure);
  // Sends what OpenSSL queued for the peer.
  bool Flush(Deadline deadline, StreamFailure* failure);
  // Receives from the socket into the pipe's input; `handshaking` checks that
  // the peer's first bytes are TLS.
  bool Fill(Deadline deadline, bool handshaking, StreamFailure* failure);
  // OpenSSL's words for the failure, or `what` when it gave none.
  std::string Reason(std::string_view what) const;

  int fd_;
  std::unique_ptr<TlsPipe> pipe_;
  bool heard_from_peer_ = false;
};

}  // namespace katsubushi::tls
