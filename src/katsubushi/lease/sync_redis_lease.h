// SyncRedisLease: a worker id lease kept from the issue path, with no thread
// of its own, for programs that embed the generator — above all AWS Lambda,
// where a process is frozen between events and background threads do not run.
//
//   * nothing happens at construction; the lease is acquired at the first ID;
//   * the generator's deadline is the renewal point (a third of the TTL after
//     the last confirmation), so the ID that crosses it renews synchronously
//     (one compare-and-set round trip, plus the replicas' acknowledgement)
//     before it is issued; each confirmation records that deadline as the
//     id's watermark (a promise, see kConfirmScript) before the generator may
//     issue up to it;
//   * Revalidate() confirms the lease the same way: call it at the start of
//     each invocation; the generator also asks after an idle gap
//     (revalidate_after_idle), so a thawed process re-validates first;
//   * a lease found lost is never touched again; a new id is acquired with a
//     new uuid, at once, in the same call;
//   * when the lease cannot be confirmed the call fails: no ID rather than a
//     possible duplicate;
//   * after a failed attempt (Redis unreachable, or no free id in the range)
//     every call fails at once, with no network I/O, for a backoff window
//     (first_backoff, doubling up to max_backoff, reset by a success); when
//     the window ends one caller tries Redis while the others keep failing
//     fast instead of queueing behind it. An exhausted range is therefore
//     scanned once per window, never once per call.
//
// The acquisition, confirmation and release are WorkerIdLease's, shared with
// the server's RedisLeaseKeeper, so embedded users, servers and Go instances
// share one namespace and one set of rules.
//
// Thread safety: Refresh() and Revalidate() may be called from many threads
// (Redis calls are serialized by a mutex; during a backoff window nobody
// waits for it); Release() once, when no other call is running.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/lease/lease_log.h"
#include "katsubushi/lease/worker_id_lease.h"
#include "katsubushi/redis/redis_client.h"

namespace katsubushi::lease {

struct SyncLeaseOptions {
  static constexpr std::chrono::milliseconds kDefaultTtl{60'000};
  static constexpr std::chrono::milliseconds kDefaultFirstBackoff{100};
  static constexpr std::chrono::milliseconds kDefaultMaxBackoff{2'000};

  // The URL, TLS, timeouts and replica policy; its log is this log.
  redis::RedisClientOptions redis;
  uint32_t min_worker_id = 1;
  uint32_t max_worker_id = 1023;
  std::chrono::milliseconds ttl = kDefaultTtl;
  // Listening to the broadcast before the first acquisition. 0 by default: a
  // cold start should not wait 3 s, and SET NX alone already never takes a
  // held id (the broadcast only saves round trips).
  std::chrono::milliseconds discovery{0};
  std::chrono::milliseconds max_watermark_wait{1000};
  // After a failed attempt no call touches Redis for this long, doubled at
  // each further failure up to max_backoff; a success resets it.
  std::chrono::milliseconds first_backoff = kDefaultFirstBackoff;
  std::chrono::milliseconds max_backoff = kDefaultMaxBackoff;
  LogFunction log;
};

class SyncRedisLease final : public LeaseRefresher {
 public:
  SyncRedisLease(Clock& clock, SyncLeaseOptions options);

  Status Refresh(GeneratorCore& generator, Reason reason) override;

  // Confirms a held lease now; acquires none.
  Status Revalidate(GeneratorCore& generator);

  // Gives the id back (compare-and-delete, recording the watermark).
  Status Release(GeneratorCore& generator);

  bool held() const;

 private:
  Status Acquire(GeneratorCore& generator);
  Status Renew(GeneratorCore& generator);
  // The last attempt's failure (Ok when it succeeded).
  Status LastFailure() const;
  // The last attempt's failure while its backoff window lasts; Ok after.
  Status InBackoff() const;
  // Locks mu_ for a Redis attempt, or says why this caller must fail fast.
  Status LockForAttempt(std::unique_lock<std::mutex>& lock) const;
  // Starts, lengthens or (on success) ends the backoff after an attempt.
  void RecordAttempt(const Status& outcome);
  void Log(LogLevel level, const std::string& message) const;

  Clock& clock_;
  const SyncLeaseOptions options_;

  mutable std::mutex mu_;
  WorkerIdLease lease_;  // guarded by mu_
  int64_t backoff_micros_ = 0;  // the current window's length; 0 when healthy

  // Read without mu_ (that is their point): a caller in a backoff window
  // learns it without waiting for the thread that holds mu_ in a Redis call.
  // retry_at is written after failure_ (release) and read first (acquire), so
  // a caller that sees a window sees its reason.
  enum class Failure : int { kNone, kRedis, kNoFreeId };
  std::atomic<Failure> failure_{Failure::kNone};
  std::atomic<int64_t> retry_at_micros_{0};
};

}  // namespace katsubushi::lease
