#include "katsubushi/latency_histogram.h"

#include <algorithm>

namespace katsubushi {

uint64_t LatencySnapshot::count() const {
  uint64_t n = 0;
  for (const uint64_t c : counts) n += c;
  return n;
}

size_t LatencyHistogram::BucketOf(uint64_t nanos) {
  return static_cast<size_t>(
      std::lower_bound(kLatencyBucketBoundsNanos.begin(), kLatencyBucketBoundsNanos.end(), nanos) -
      kLatencyBucketBoundsNanos.begin());
}

void LatencyHistogram::Observe(std::chrono::nanoseconds duration, uint64_t requests) {
  const uint64_t nanos = duration.count() > 0 ? static_cast<uint64_t>(duration.count()) : 0;
  Shard& shard = shards_[ThisThreadStatsShard()];
  shard.counts[BucketOf(nanos)].fetch_add(requests, std::memory_order_relaxed);
  shard.sum_nanos.fetch_add(nanos * requests, std::memory_order_relaxed);
}

LatencySnapshot LatencyHistogram::Snapshot() const {
  LatencySnapshot s;
  for (const Shard& shard : shards_) {
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      s.counts[i] += shard.counts[i].load(std::memory_order_relaxed);
    }
    s.sum_nanos += shard.sum_nanos.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace katsubushi
