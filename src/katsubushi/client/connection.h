// Connection: one non-blocking socket to a server, each operation bounded by
// a deadline (poll), so a stopped or silent server costs the caller at most
// the time it allowed. No protocol here: bytes in, bytes out; over TLS for a
// tls:// or https:// server (tls/client_stream.h), the handshake bounded by
// the same deadline.
//
// Failures are values: a Status with a static reason, the errno behind it,
// and for TLS the detail (OpenSSL's reason, the certificate's problem).
// Names are resolved with getaddrinfo, which does not honour the deadline; a
// numeric address (or /etc/hosts) never waits on DNS.
//
// Thread safety: a Connection is used by one thread at a time (the Client
// pools them). Move-only; the destructor closes the socket.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include <memory>

#include "katsubushi/client/server_address.h"
#include "katsubushi/status.h"
#include "katsubushi/tls/client_stream.h"
#include "katsubushi/tls/tls_client.h"

namespace katsubushi::client {

using Deadline = std::chrono::steady_clock::time_point;

inline constexpr Status kResolveFailed{StatusCode::kUnavailable, "server name did not resolve"};
inline constexpr Status kConnectFailed{StatusCode::kUnavailable, "connect failed"};
inline constexpr Status kSendFailed{StatusCode::kUnavailable, "send failed"};
inline constexpr Status kReceiveFailed{StatusCode::kUnavailable, "receive failed"};
inline constexpr Status kClosedEarly{StatusCode::kUnavailable,
                                     "connection closed before the reply was complete"};
inline constexpr Status kTimedOut{StatusCode::kDeadlineExceeded, "timed out"};
inline constexpr Status kNotTls{StatusCode::kUnavailable, "TLS handshake failed: the server does not speak TLS"};
inline constexpr Status kTlsClosed{StatusCode::kUnavailable,
                                   "TLS handshake failed: the server closed the connection"};
inline constexpr Status kCertificateNotTrusted{StatusCode::kUnavailable,
                                               "TLS handshake failed: server certificate not verified"};
inline constexpr Status kCertificateNameMismatch{
    StatusCode::kUnavailable, "TLS handshake failed: server certificate is not for the name dialled"};
inline constexpr Status kTlsFailed{StatusCode::kUnavailable, "TLS failed"};

struct IoFailure {
  Status status;
  int sys_errno = 0;   // 0 when there is none
  std::string detail;  // TLS: why, in OpenSSL's or the certificate's terms; else empty
};

// How TLS servers are dialled (one per Client: its CA, client certificate).
struct TlsDial {
  tls::ClientContext context;  // null: tls:// and https:// cannot be dialled
  std::string server_name;     // checked (and sent as SNI) instead of the address's host
  // False: the chain is verified but not the name (the health check dials
  // 127.0.0.1, which a server certificate seldom names).
  bool check_name = true;
};

class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // An invalid Connection and `*failure` set when it cannot connect (and,
  // for a TLS address, shake hands) in time. `tls` is read for TLS addresses.
  static Connection Open(const ServerAddress& server, const TlsDial& tls, Deadline deadline,
                         IoFailure* failure);

  bool valid() const { return fd_ >= 0; }

  bool SendAll(std::string_view data, Deadline deadline, IoFailure* failure);
  // Waits for bytes and appends what is there (at most `max_bytes`) to
  // `buffer`. Sets `*eof` when the peer closed instead.
  bool Receive(std::string* buffer, size_t max_bytes, Deadline deadline, bool* eof,
               IoFailure* failure);

 private:
  explicit Connection(int fd) : fd_(fd) {}
  bool StartTls(const ServerAddress& server, const TlsDial& tls, Deadline deadline, IoFailure* failure);
  void Close();

  int fd_ = -1;
  std::unique_ptr<tls::ClientStream> tls_;  // null: plaintext
};

}  // namespace katsubushi::client
