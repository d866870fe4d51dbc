// Transport: one blocking byte stream to a Redis node, plain TCP or TLS,
// where every operation ends by a deadline. What the Redis client needs and
// no more: connect (resolving the name again each time, so a DNS name that
// moved to a new primary is followed), write all, read what has arrived.
//
// Built on non-blocking sockets and poll(2), so a deadline never leaves the
// stream in an unknown state: a read that times out may simply be tried
// again (a subscription waits in slices that way). TLS runs OpenSSL over
// memory buffers and this class moves the bytes, so every write is a send()
// with MSG_NOSIGNAL: a peer that went away is an error, never a SIGPIPE in an
// embedding program.
//
// Not thread-safe: one owner at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "katsubushi/tls/tls_client.h"

namespace katsubushi::redis {

using Deadline = std::chrono::steady_clock::time_point;

class Transport {
 public:
  enum class ReadResult { kData, kTimeout, kClosed, kError };

  // Resolves `host`, connects to the first address that accepts, and with a
  // context shakes hands (verifying the peer as the context says). Null with
  // *error on failure.
  static std::unique_ptr<Transport> Connect(const std::string& host, uint16_t port,
                                            const tls::ClientContext& tls, bool verify_peer,
                                            Deadline deadline, std::string* error);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  bool WriteAll(std::string_view bytes, Deadline deadline, std::string* error);
  // Up to `capacity` bytes into `buf`; *size is set with kData.
  ReadResult Read(char* buf, size_t capacity, size_t* size, Deadline deadline, std::string* error);

 private:
  struct Tls;
  explicit Transport(int fd);
  // Waits until the socket is ready for `events` (POLLIN/POLLOUT) or the deadline.
  bool WaitFor(short events, Deadline deadline, std::string* error) const;
  bool SendRaw(std::string_view bytes, Deadline deadline, std::string* error);
  ReadResult RecvRaw(char* buf, size_t capacity, size_t* size, Deadline deadline, std::string* error);
  bool Handshake(std::string_view host, bool verify_peer, const tls::ClientContext& context,
                 Deadline deadline, std::string* error);
  // Sends what OpenSSL queued for the peer.
  bool FlushTls(Deadline deadline, std::string* error);
  // Reads from the socket into OpenSSL's input buffer.
  ReadResult FillTls(Deadline deadline, std::string* error);

  int fd_;
  std::unique_ptr<Tls> tls_;
};

}  // namespace katsubushi::redis
