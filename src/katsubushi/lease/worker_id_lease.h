// WorkerIdLease: one worker id leased through Redis, and the only code that
// acquires, confirms and releases one. The server's RedisLeaseKeeper (a
// thread, renewing every second) and the embedded SyncRedisLease (no thread,
// renewing from the issue path) are two schedules over it.
//
//   acquire   give back the SETs of earlier attempts whose reply was lost
//             (they may be ours: the id would otherwise sit locked until the
//             key expires); a new uuid; among the first kMaxCandidates ids of
//             the range not known to be in use pick one at random (raus's
//             rule), SET NX it, and on "taken" mark it and pick again; then
//             confirm it (the first promise, replicated as the ReplicaPolicy
//             says) while reading the previous holders' watermark; a
//             confirmation that fails releases the key; the generator's floor
//             is set past that watermark (waited for up to
//             max_watermark_wait, refused by the generator after that until
//             the clock passes it), and only then does it Resume()
//   renew     confirm (extend the key, raise the watermark to the new
//             deadline's promise); only after that may the generator extend
//             its deadline, computed from when the confirmation was *sent*;
//             publish "<uuid>:<id>" for raus's discovery
//   release   compare-and-delete, recording the exact last ms issued
//
// The schedule chooses the generator's deadline for a confirmation
// (DeadlineRule) and what to do when Redis does not answer.
//
// Not thread-safe: the schedule serializes calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/lease/lease_commands.h"
#include "katsubushi/lease/lease_log.h"
#include "katsubushi/redis/redis_client.h"
#include "katsubushi/status.h"

namespace katsubushi::lease {

inline constexpr Status kRedisUnavailable{StatusCode::kUnavailable,
                                          "cannot reach Redis to confirm the worker id lease"};
inline constexpr Status kNoFreeWorkerId{StatusCode::kUnavailable,
                                        "no free worker id in the configured range"};
// A TLS Redis whose handshake failed: what the caller most needs to know
// (a wrong CA, an expired certificate) said in the status itself.
inline constexpr Status kRedisTlsVerifyFailed{StatusCode::kUnavailable,
                                              "cannot reach Redis: TLS certificate verify failed"};
inline constexpr Status kRedisTlsFailed{StatusCode::kUnavailable, "cannot reach Redis: TLS handshake failed"};

// The status for a Redis failure described by `error` (RedisClient::error()).
Status RedisFailure(const std::string& error);

struct WorkerIdLeaseOptions {
  redis::RedisClientOptions redis;  // its log is replaced by `log` below
  uint32_t min_worker_id = 1;
  uint32_t max_worker_id = 1023;
  std::chrono::milliseconds expiry{600'000};  // of the lock key
  // How long an acquisition waits for the clock to pass the previous
  // holders' watermark before it leaves the rest to the generator's refusal.
  std::chrono::milliseconds max_watermark_wait{0};
  // The generator's deadline for a confirmation sent at `sent_micros`.
  std::function<int64_t(int64_t sent_micros)> deadline_after;
  LogFunction log;
};

class WorkerIdLease {
 public:
  enum class Renewal { kRenewed, kLost, kNoAnswer };
  // SETs with a lost reply remembered for release; past this (a long outage
  // with many attempts) further ones are left to expire.
  static constexpr size_t kMaxUnknownSets = 64;

  WorkerIdLease(Clock& clock, WorkerIdLeaseOptions options);

  // Ids announced by other holders on the broadcast channel within
  // `duration`; false (and the ids heard) when the subscription failed.
  bool Discover(std::chrono::milliseconds duration, const std::function<bool()>& keep_going,
                std::set<uint32_t>* used);

  // Acquires a worker id not in `used` and resumes the generator under it.
  // A RedisFailure(), kNoFreeWorkerId, or the generator's refusal; error()
  // says why.
  Status Acquire(GeneratorCore& generator, std::set<uint32_t> used);
  Renewal Renew(GeneratorCore& generator);
  // Gives a held id back (the generator is suspended first); false when Redis
  // did not answer (the key then frees itself when it expires).
  bool Release(GeneratorCore& generator);

  bool held() const { return held_; }
  uint32_t worker_id() const { return worker_id_; }
  // The previous holders' watermark when it was ahead of the clock at
  // acquisition (the generator refuses until the clock passes it); else 0.
  int64_t awaited_watermark_ms() const { return awaited_watermark_ms_; }
  // When the last successful confirmation was sent.
  int64_t confirmed_at_micros() const { return confirmed_at_micros_; }
  const std::string& error() const { return error_; }
  // Thread-safe (the client's counters are atomics).
  redis::RedisCounters redis_counters() const { return client_.counters(); }

 private:
  // Gives back the keys whose SET reply was lost, where they are ours; false
  // when Redis does not answer (the rest are kept for the next attempt).
  bool ReleaseUnknownSets();
  void Log(LogLevel level, const std::string& message) const;
  // Records why Redis failed: its error reply, or the client's error.
  void SetError(const std::string& error_reply);

  Clock& clock_;
  const WorkerIdLeaseOptions options_;
  redis::RedisClient client_;
  std::mt19937_64 rng_;

  bool held_ = false;
  uint32_t worker_id_ = 0;
  std::string uuid_;
  int64_t previous_watermark_ms_ = 0;  // the previous holders', read at acquisition
  int64_t awaited_watermark_ms_ = 0;
  int64_t confirmed_at_micros_ = 0;
  std::string error_;
  // (id, uuid) of SETs that got no reply: maybe ours, nothing issued under them.
  std::vector<std::pair<uint32_t, std::string>> unknown_sets_;
};

}  // namespace katsubushi::lease
