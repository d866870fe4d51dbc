#include "katsubushi/client/backoff.h"

#include <algorithm>

namespace katsubushi::client {

bool ServerBackoff::Skipped() const {
  const int64_t until = skip_until_micros_.load(std::memory_order_relaxed);
  return until != 0 && clock_.NowUnixMicros() < until;
}

int64_t ServerBackoff::NextIntervalMicros() const {
  const uint32_t failures = failures_.load(std::memory_order_relaxed);
  int64_t interval = initial_micros_;
  // Doubling stops at max; the loop bound keeps the shift from overflowing.
  for (uint32_t i = 0; i < failures && interval < max_micros_; ++i) interval *= 2;
  return std::min(interval, max_micros_);
}

void ServerBackoff::RecordFailure() {
  const int64_t interval = NextIntervalMicros();
  failures_.fetch_add(1, std::memory_order_relaxed);
  skip_until_micros_.store(clock_.NowUnixMicros() + interval, std::memory_order_relaxed);
}

void ServerBackoff::RecordSuccess() {
  // Loads first so that the hot path (a healthy server) does not write shared lines.
  if (failures_.load(std::memory_order_relaxed) != 0) failures_.store(0, std::memory_order_relaxed);
  if (skip_until_micros_.load(std::memory_order_relaxed) != 0) {
    skip_until_micros_.store(0, std::memory_order_relaxed);
  }
}

}  // namespace katsubushi::client
