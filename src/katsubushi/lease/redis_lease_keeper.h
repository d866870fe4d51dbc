// RedisLeaseKeeper: holds a worker id leased through Redis for a GeneratorCore,
// on a thread of its own, and keeps the generator's lease hooks in step:
//
//   acquire   listen to the broadcast (3 s), SET NX a free id, record our
//             first promise in its watermark while reading the previous one,
//             set the generator's floor there (AdvancePast, without waiting:
//             the generator refuses with kBehindWatermark while the clock is
//             behind it, and the renewals go on), Resume() the generator
//   hold      every second: PUBLISH "<uuid>:<id>", renew by compare-and-set
//             (raising the watermark to the new deadline's promise), and only
//             then ExtendLease() to that deadline, computed from the time the
//             renewal was *sent*
//   lost      the renewal finds another value (or none): Suspend() at once,
//             never touch that key again, acquire again with a new uuid
//   no Redis  keep issuing until the deadline (the generator refuses after
//             it on its own), keep trying; a later renewal that finds the key
//             still ours resumes at once
//   stop      Suspend(), then release by compare-and-delete, recording the
//             exact last ms issued as the watermark
//
// Redis being unreachable or every id being taken is never fatal: the keeper
// retries with capped exponential backoff and says so in the log. The
// acquisition, confirmation and release are WorkerIdLease's (shared with the
// embedded SyncRedisLease); the keeper is their every-second schedule.
//
// Thread safety: Start() and Stop() from one thread; counters() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/lease/lease_log.h"
#include "katsubushi/lease/raus_protocol.h"
#include "katsubushi/lease/worker_id_lease.h"
#include "katsubushi/redis/redis_client.h"

namespace katsubushi::lease {

struct RedisLeaseOptions {
  // The URL, TLS, timeouts and replica policy; its log is this log.
  redis::RedisClientOptions redis;
  uint32_t min_worker_id = 1;
  uint32_t max_worker_id = 1023;
  std::chrono::milliseconds lease_expiry = kDefaultLeaseExpiry;
  std::chrono::milliseconds discovery = kDiscoveryTime;
  std::chrono::milliseconds retry_min{200};
  std::chrono::milliseconds retry_max{5000};
  LogFunction log;
};

struct LeaseCounters {
  uint64_t acquisitions = 0;
  uint64_t losses = 0;          // renewals that found the key not ours
  uint64_t renew_failures = 0;  // renewals that got no answer from Redis
  redis::RedisCounters redis;
};

class RedisLeaseKeeper {
 public:
  RedisLeaseKeeper(GeneratorCore& generator, Clock& clock, RedisLeaseOptions options);
  ~RedisLeaseKeeper();
  RedisLeaseKeeper(const RedisLeaseKeeper&) = delete;
  RedisLeaseKeeper& operator=(const RedisLeaseKeeper&) = delete;

  void Start();
  // Stops issuing, releases the lease (recording the watermark) and joins.
  void Stop();

  LeaseCounters counters() const;
  // Why Redis does not give a lease now (for /healthz), Ok while it does.
  Status redis_health() const;

 private:
  void Run();
  bool Acquire();
  void Renew();
  // Sleeps until `deadline` or Stop(); false when stopping.
  bool SleepUntil(std::chrono::steady_clock::time_point deadline);
  void SetRedisHealth(Status status);
  void Log(LogLevel level, const std::string& message) const;

  GeneratorCore& generator_;
  Clock& clock_;
  const RedisLeaseOptions options_;
  std::mt19937_64 rng_;

  // Owned by the keeper thread.
  WorkerIdLease lease_;
  int64_t awaited_watermark_ms_ = 0;  // > 0 while the clock is behind it (logged)
  bool fenced_ = false;  // the deadline passed without a renewal (logged once)
  std::string last_error_logged_;  // an acquisition failure, logged once until it changes

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  Status redis_health_;    // guarded by mu_
  std::atomic<bool> stop_requested_{false};
  std::thread thread_;

  std::atomic<uint64_t> acquisitions_{0};
  std::atomic<uint64_t> losses_{0};
  std::atomic<uint64_t> renew_failures_{0};
};

}  // namespace katsubushi::lease
