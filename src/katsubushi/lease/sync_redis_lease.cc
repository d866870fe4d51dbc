#include "katsubushi/lease/sync_redis_lease.h"

#include <algorithm>
#include <set>

#include "katsubushi/lease/raus_protocol.h"

namespace katsubushi::lease {
namespace {

// A confirmation this recent answers a concurrent caller's request too.
constexpr int64_t kJustConfirmedMicros = 100'000;

WorkerIdLeaseOptions LeaseOptionsOf(const SyncLeaseOptions& options) {
  WorkerIdLeaseOptions out;
  out.redis = options.redis;
  out.min_worker_id = options.min_worker_id;
  out.max_worker_id = options.max_worker_id;
  out.expiry = options.ttl;
  // A short wait keeps a quick restart from failing its first call; a longer
  // one is refused (kBehindWatermark) until the clock passes it.
  out.max_watermark_wait = options.max_watermark_wait;
  // The renewal point (a third of the TTL) comes long before the fencing
  // deadline, so crossing it renews; the fencing deadline stays the hard bound.
  const std::chrono::milliseconds ttl = options.ttl;
  out.deadline_after = [ttl](int64_t sent_micros) {
    return std::min(sent_micros + std::chrono::microseconds(ttl).count() / 3,
                    LeaseValidUntilMicros(sent_micros, ttl));
  };
  out.log = options.log;
  return out;
}

}  // namespace

SyncRedisLease::SyncRedisLease(Clock& clock, SyncLeaseOptions options)
    : clock_(clock), options_(std::move(options)), lease_(clock, LeaseOptionsOf(options_)) {}

void SyncRedisLease::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

bool SyncRedisLease::held() const {
  std::lock_guard lock(mu_);
  return lease_.held();
}
Status SyncRedisLease::LastFailure() const {
  switch (failure_.load(std::memory_order_relaxed)) {
    case Failure::kNone: return Status::Ok();
    case Failure::kRedis: return kRedisUnavailable;
    case Failure::kRedisTlsVerify: return kRedisTlsVerifyFailed;
    case Failure::kRedisTls: return kRedisTlsFailed;
    case Failure::kNoFreeId: return kNoFreeWorkerId;
  }
  return kRedisUnavailable;
}

Status SyncRedisLease::InBackoff() const {
  if (clock_.NowUnixMicros() >= retry_at_micros_.load(std::memory_order_acquire)) return Status::Ok();
  return LastFailure();
}

Status SyncRedisLease::LockForAttempt(std::unique_lock<std::mutex>& lock) const {
  if (Status s = InBackoff(); !s.ok()) return s;
  // After a failure, the caller that finds the window over probes Redis; the
  // others fail at once rather than wait a Redis timeout behind it. While
  // healthy they wait (a round trip) for a renewal that is likely to succeed.
  if (failure_.load(std::memory_order_relaxed) != Failure::kNone) {
    if (!lock.try_lock()) {
      const Status failure = LastFailure();
      if (!failure.ok()) return failure;
      lock.lock();  // the probe just succeeded
    }
  } else {
    lock.lock();
  }
  // The holder of mu_ before us may have just failed.
  return InBackoff();
}

void SyncRedisLease::RecordAttempt(const Status& outcome) {
  Failure failure = Failure::kNone;
  if (outcome == kRedisUnavailable) failure = Failure::kRedis;
  if (outcome == kRedisTlsVerifyFailed) failure = Failure::kRedisTlsVerify;
  if (outcome == kRedisTlsFailed) failure = Failure::kRedisTls;
  if (outcome == kNoFreeWorkerId) failure = Failure::kNoFreeId;
  if (failure == Failure::kNone) {
    if (outcome.ok()) {
      backoff_micros_ = 0;
      failure_.store(Failure::kNone, std::memory_order_relaxed);
      retry_at_micros_.store(0, std::memory_order_release);
    }
    return;  // another refusal (a clock behind the watermark) is not Redis's
  }
  const int64_t first = std::chrono::microseconds(options_.first_backoff).count();
  const int64_t max = std::chrono::microseconds(options_.max_backoff).count();
  backoff_micros_ = backoff_micros_ == 0 ? first : std::min(backoff_micros_ * 2, max);
  failure_.store(failure, std::memory_order_relaxed);
  retry_at_micros_.store(clock_.NowUnixMicros() + backoff_micros_, std::memory_order_release);
}

Status SyncRedisLease::Refresh(GeneratorCore& generator, Reason reason) {
  std::unique_lock lock(mu_, std::defer_lock);
  if (Status s = LockForAttempt(lock); !s.ok()) return s;
  const int64_t now = clock_.NowUnixMicros();
  // Another thread may have refreshed while this one waited for the mutex.
  // Before the deadline a kDeadline call is still due when nobody confirmed
  // just now: a batch whose last ID would be stamped at the deadline asks.
  const bool current = lease_.held() && !generator.suspended() && now < generator.lease_valid_until_micros();
  if (current &&
      (reason == Reason::kSuspended || now - lease_.confirmed_at_micros() < kJustConfirmedMicros)) {
    return Status::Ok();
  }
  const Status outcome = !lease_.held() || generator.suspended() ? Acquire(generator) : Renew(generator);
  RecordAttempt(outcome);
  return outcome;
}

Status SyncRedisLease::Revalidate(GeneratorCore& generator) {
  std::unique_lock lock(mu_, std::defer_lock);
  if (Status s = LockForAttempt(lock); !s.ok()) return s;
  if (!lease_.held()) return Status::Ok();  // acquired lazily at the first ID
  const Status outcome = Renew(generator);
  RecordAttempt(outcome);
  return outcome;
}

Status SyncRedisLease::Renew(GeneratorCore& generator) {
  const uint32_t id = lease_.worker_id();
  switch (lease_.Renew(generator)) {
    case WorkerIdLease::Renewal::kRenewed:
      return Status::Ok();
    case WorkerIdLease::Renewal::kNoAnswer:
      // Not confirmed: refuse now rather than risk a duplicate; the next call
      // tries again.
      generator.ExtendLease(INT64_MIN);
      Log(LogLevel::kWarning, "cannot confirm the worker id lease: " + lease_.error());
      return RedisFailure(lease_.error());
    case WorkerIdLease::Renewal::kLost:
      Log(LogLevel::kError,
          "worker id " + std::to_string(id) + " lease lost (the key is no longer ours); acquiring a new one");
      return Acquire(generator);
  }
  return kRedisUnavailable;
}

Status SyncRedisLease::Acquire(GeneratorCore& generator) {
  std::set<uint32_t> used;
  if (options_.discovery.count() > 0) lease_.Discover(options_.discovery, [] { return true; }, &used);
  const Status s = lease_.Acquire(generator, std::move(used));
  if (!s.ok()) Log(LogLevel::kWarning, "cannot acquire a worker id: " + lease_.error());
  return s;
}

Status SyncRedisLease::Release(GeneratorCore& generator) {
  std::lock_guard lock(mu_);
  return lease_.Release(generator) ? Status::Ok() : kRedisUnavailable;
}

}  // namespace katsubushi::lease
