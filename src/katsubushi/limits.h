// Limits that more than one front enforces, in one place. Limits that belong
// to one protocol's framing (line and header lengths, body sizes) stay next
// to its parser.
#pragma once

#include <cstddef>

namespace katsubushi {

// The most IDs one request may ask for, whatever the front: a memcached get's
// keys, HTTP /ids?n=, gRPC FetchMulti's n. go-katsubushi's MaxHTTPBulkSize,
// which its FetchMulti also enforces. At most GeneratorCore::kMaxIdsPerCall.
inline constexpr size_t kMaxIdsPerRequest = 1000;

}  // namespace katsubushi
