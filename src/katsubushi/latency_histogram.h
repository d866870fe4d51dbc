// LatencyHistogram: request durations in fixed buckets, for Prometheus
// histograms (katsubushi_request_duration_seconds).
//
// The buckets suit a server whose requests take microseconds: from 5 µs to
// 1 s in 1-2.5-5 steps, so p50 and p99 of a loopback request land in buckets
// a few microseconds wide, and a stall (a paused process, a full socket) is
// still placed within a factor of 2.5 up to a second.
//
// Hot-path cost: Observe() is a handful of compares and two relaxed fetch_adds
// on a cache line the calling thread owns (the shards of ShardedCounter); no
// allocation, no lock. Relaxed is enough: each cell is an independent
// monotonic count, and a reader only needs every cell to be some value it
// had, not a consistent cut (a scrape may see a bucket before the sum that
// goes with it; the next scrape catches up).
//
// Thread safety: Observe() and Snapshot() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "katsubushi/stats_shards.h"

namespace katsubushi {

// Upper bounds of the finite buckets, in nanoseconds (Prometheus `le`,
// inclusive). A last bucket, +Inf, takes the rest.
inline constexpr std::array<uint64_t, 17> kLatencyBucketBoundsNanos = {
    5'000,       10'000,      25'000,      50'000,        100'000,     250'000,
    500'000,     1'000'000,   2'500'000,   5'000'000,     10'000'000,  25'000'000,
    50'000'000,  100'000'000, 250'000'000, 500'000'000,   1'000'000'000};
inline constexpr size_t kLatencyBuckets = kLatencyBucketBoundsNanos.size() + 1;

struct LatencySnapshot {
  std::array<uint64_t, kLatencyBuckets> counts{};  // per bucket, not cumulative
  uint64_t sum_nanos = 0;
  uint64_t count() const;
};

class LatencyHistogram {
 public:
  // `requests` requests that each took `duration` (a pipelined batch is
  // answered at once: every request in it waited as long as the batch).
  void Observe(std::chrono::nanoseconds duration, uint64_t requests = 1);
  LatencySnapshot Snapshot() const;

  // The bucket a duration falls in (the first bound >= it; the last for +Inf).
  static size_t BucketOf(uint64_t nanos);

 private:
  struct alignas(64) Shard {
    std::array<std::atomic<uint64_t>, kLatencyBuckets> counts{};
    std::atomic<uint64_t> sum_nanos{0};
  };
  std::array<Shard, kStatsShards> shards_{};
};

}  // namespace katsubushi
