// Limits that more than one front enforces, in one place. Limits that belong
// to one protocol's framing (line and header lengths, body sizes) stay next
// to its parser.
#pragma once

#include <chrono>
#include <cstddef>

namespace katsubushi {

// The most IDs one request may ask for, whatever the front: a memcached get's
// keys, HTTP /ids?n=, gRPC FetchMulti's n. go-katsubushi's MaxHTTPBulkSize,
// which its FetchMulti also enforces. At most GeneratorCore::kMaxIdsPerCall.
inline constexpr size_t kMaxIdsPerRequest = 1000;

// A TLS handshake on any front must finish within this (or within the idle
// timeout, when that is shorter): a connection that stalls mid-handshake
// holds a connection slot and TLS buffers, and a real client's handshake
// takes a few round trips.
inline constexpr std::chrono::milliseconds kTlsHandshakeTimeout{10'000};

// The handshake deadline of a front whose idle timeout is `idle_timeout`
// (0: none), the same on every front.
inline constexpr std::chrono::milliseconds TlsHandshakeTimeout(std::chrono::milliseconds idle_timeout) {
  return idle_timeout.count() > 0 && idle_timeout < kTlsHandshakeTimeout ? idle_timeout : kTlsHandshakeTimeout;
}

}  // namespace katsubushi
