// Connection: one non-blocking socket to a server, each operation bounded by
// a deadline (poll), so a stopped or silent server costs the caller at most
// the time it allowed. No protocol here: bytes in, bytes out.
//
// Failures are values: a Status with a static reason and the errno behind it.
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

#include "katsubushi/client/server_address.h"
#include "katsubushi/status.h"

namespace katsubushi::client {

using Deadline = std::chrono::steady_clock::time_point;

inline constexpr Status kResolveFailed{StatusCode::kUnavailable, "server name did not resolve"};
inline constexpr Status kConnectFailed{StatusCode::kUnavailable, "connect failed"};
inline constexpr Status kSendFailed{StatusCode::kUnavailable, "send failed"};
inline constexpr Status kReceiveFailed{StatusCode::kUnavailable, "receive failed"};
inline constexpr Status kClosedEarly{StatusCode::kUnavailable,
                                     "connection closed before the reply was complete"};
inline constexpr Status kTimedOut{StatusCode::kDeadlineExceeded, "timed out"};

struct IoFailure {
  Status status;
  int sys_errno = 0;  // 0 when there is none
};

class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(Connection&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // An invalid Connection and `*failure` set when it cannot connect in time.
  static Connection Open(const ServerAddress& server, Deadline deadline, IoFailure* failure);

  bool valid() const { return fd_ >= 0; }

  bool SendAll(std::string_view data, Deadline deadline, IoFailure* failure);
  // Waits for bytes and appends what is there (at most `max_bytes`) to
  // `buffer`. Sets `*eof` when the peer closed instead.
  bool Receive(std::string* buffer, size_t max_bytes, Deadline deadline, bool* eof,
               IoFailure* failure);

 private:
  explicit Connection(int fd) : fd_(fd) {}
  void Close();

  int fd_ = -1;
};

}  // namespace katsubushi::client
