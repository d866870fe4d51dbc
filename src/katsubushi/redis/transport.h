// Transport: one blocking byte stream to a Redis node, plain TCP or TLS,
// where every operation ends by a deadline. What the Redis client needs and
// no more: connect (resolving the name again each time, so a DNS name that
// moved to a new primary is followed), write all, read what has arrived.
//
// Built on non-blocking sockets and poll(2) (tls/socket_io.h), so a deadline
// never leaves the stream in an unknown state: a read that times out may
// simply be tried again (a subscription waits in slices that way). TLS is
// tls::ClientStream, OpenSSL over memory buffers, so every write is a send()
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

#include "katsubushi/tls/client_stream.h"
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
  explicit Transport(int fd);

  int fd_;
  std::unique_ptr<tls::ClientStream> tls_;  // null: plaintext
};

}  // namespace katsubushi::redis
