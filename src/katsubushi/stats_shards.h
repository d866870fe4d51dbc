// The shard a thread writes its statistics to, so that threads counting at
// once do not share a cache line (ShardedCounter, LatencyHistogram).
#pragma once

#include <cstddef>

namespace katsubushi {

inline constexpr size_t kStatsShards = 8;

// Threads take shards round-robin in the order they first count something;
// io threads are few and long-lived, so each usually gets a shard to itself.
size_t ThisThreadStatsShard();

}  // namespace katsubushi
