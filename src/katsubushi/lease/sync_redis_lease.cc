#include "katsubushi/lease/sync_redis_lease.h"

#include <algorithm>
#include <vector>

#include "katsubushi/lease/lease_commands.h"

namespace katsubushi::lease {
namespace {

// A confirmation this recent answers a concurrent caller's request too.
constexpr int64_t kJustConfirmedMicros = 100'000;
// SETs with a lost reply remembered for release; past this (a long outage
// with many attempts) further ones are left to expire.
constexpr size_t kMaxUnknownSets = 64;

}  // namespace

SyncRedisLease::SyncRedisLease(Clock& clock, SyncLeaseOptions options)
    : clock_(clock),
      options_(std::move(options)),
      client_(options_.url, options_.timeouts),
      rng_(SeededRng()) {}

void SyncRedisLease::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

bool SyncRedisLease::held() const {
  std::lock_guard lock(mu_);
  return held_;
}

Status SyncRedisLease::LastFailure() const {
  switch (failure_.load(std::memory_order_relaxed)) {
    case Failure::kNone: return Status::Ok();
    case Failure::kRedis: return kRedisUnavailable;
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
  if (abandoned_) return kNoWorkerId;
  const int64_t now = clock_.NowUnixMicros();
  // Another thread may have refreshed while this one waited for the mutex.
  // Before the deadline a kDeadline call is still due when nobody confirmed
  // just now: a batch whose last ID would be stamped at the deadline asks.
  const bool current = held_ && !generator.suspended() && now < generator.lease_valid_until_micros();
  if (current && (reason == Reason::kSuspended || now - confirmed_at_micros_ < kJustConfirmedMicros)) {
    return Status::Ok();
  }
  const Status outcome =
      !held_ || generator.suspended() ? AcquireLocked(generator) : RenewLocked(generator);
  RecordAttempt(outcome);
  return outcome;
}

Status SyncRedisLease::Revalidate(GeneratorCore& generator) {
  std::unique_lock lock(mu_, std::defer_lock);
  if (Status s = LockForAttempt(lock); !s.ok()) return s;
  if (abandoned_ || !held_) return Status::Ok();  // acquired lazily at the first ID
  const Status outcome = RenewLocked(generator);
  RecordAttempt(outcome);
  return outcome;
}

bool SyncRedisLease::ReleaseUnknownSetsLocked() {
  while (!unknown_sets_.empty()) {
    const auto& [id, uuid] = unknown_sets_.back();
    std::string ignored;
    // Nothing was issued under it: the watermark is left as it is.
    if (lease::Release(client_, options_.url.ns, id, uuid, 0, FinalWatermark::kRaise, &ignored) ==
        LeaseReply::kNoAnswer) {
      return false;  // still unreachable: one timeout per attempt, not one per key
    }
    unknown_sets_.pop_back();
  }
  return true;
}

int64_t SyncRedisLease::DeadlineAfter(int64_t sent_micros) const {
  // The renewal point (a third of the TTL) comes long before the fencing
  // deadline, so crossing it renews; the fencing deadline stays the hard bound.
  return std::min(sent_micros + std::chrono::microseconds(options_.ttl).count() / 3,
                  LeaseValidUntilMicros(sent_micros, options_.ttl));
}

Status SyncRedisLease::RenewLocked(GeneratorCore& generator) {
  const int64_t sent = clock_.NowUnixMicros();
  const int64_t deadline = DeadlineAfter(sent);
  std::string error_reply;
  const LeaseReply reply = Confirm(client_, options_.url.ns, worker_id_, uuid_, options_.ttl,
                                   LastMillisBefore(deadline), nullptr, &error_reply);
  if (reply == LeaseReply::kOk) {
    PublishHolder(client_, options_.url.ns, worker_id_, uuid_);  // best effort, for Go discovery
    confirmed_at_micros_ = sent;
    generator.ExtendLease(deadline);  // only now: Redis holds its promise
    return Status::Ok();
  }
  if (reply == LeaseReply::kNoAnswer) {
    // Not confirmed: refuse now rather than risk a duplicate; the next call
    // tries again.
    generator.ExtendLease(INT64_MIN);
    Log(LogLevel::kWarning, "cannot confirm the worker id lease: " +
                                (error_reply.empty() ? client_.error() : error_reply));
    return kRedisUnavailable;
  }
  generator.Suspend();
  held_ = false;
  Log(LogLevel::kError, "worker id " + std::to_string(worker_id_) +
                            " lease lost (the key is no longer ours); acquiring a new one");
  return AcquireLocked(generator);
}

Status SyncRedisLease::AcquireLocked(GeneratorCore& generator) {
  generator.Suspend();
  held_ = false;
  if (!ReleaseUnknownSetsLocked()) {
    Log(LogLevel::kWarning, "cannot acquire a worker id: " + client_.error());
    return kRedisUnavailable;
  }
  uuid_ = NewUuid();
  std::set<uint32_t> used;
  if (options_.discovery.count() > 0) {
    client_.Listen(BroadcastChannel(options_.url.ns), options_.discovery,
                   [&](std::string_view payload) {
                     if (auto b = ParseBroadcast(payload); b && b->uuid != uuid_) used.insert(b->worker_id);
                   },
                   [] { return true; });
  }
  // Without discovery, start at a random id so that many cold starts at once
  // do not all queue on the lowest ids.
  std::vector<uint32_t> order;
  for (uint64_t id = options_.min_worker_id; id <= options_.max_worker_id; ++id) {
    if (!used.contains(static_cast<uint32_t>(id))) order.push_back(static_cast<uint32_t>(id));
  }
  if (!order.empty()) {
    std::uniform_int_distribution<size_t> start(0, order.size() - 1);
    std::rotate(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(start(rng_)), order.end());
  }
  for (const uint32_t id : order) {
    const int64_t sent = clock_.NowUnixMicros();
    std::string error_reply;
    const LeaseReply reply = SetIfAbsent(client_, options_.url.ns, id, uuid_, options_.ttl, &error_reply);
    if (reply == LeaseReply::kNotOurs) continue;
    if (reply == LeaseReply::kNoAnswer) {
      // The SET may have been applied with its reply lost: give it back as
      // soon as Redis answers again (bounded: one entry per failed attempt,
      // and each attempt comes after a backoff window).
      if (unknown_sets_.size() < kMaxUnknownSets) unknown_sets_.emplace_back(id, uuid_);
      Log(LogLevel::kWarning, "cannot acquire a worker id: " +
                                  (error_reply.empty() ? client_.error() : error_reply));
      return kRedisUnavailable;
    }
    // The id is ours: promise what this lease allows before anything is
    // issued under it, and learn what the previous holders promised.
    const int64_t deadline = DeadlineAfter(sent);
    int64_t previous = 0;
    const LeaseReply claim = Confirm(client_, options_.url.ns, id, uuid_, options_.ttl,
                                     LastMillisBefore(deadline), &previous, &error_reply);
    if (claim == LeaseReply::kNotOurs) continue;  // expired between the two commands
    if (claim == LeaseReply::kNoAnswer) {
      std::string ignored;
      // The previous watermark is unknown: the release may only raise it.
      lease::Release(client_, options_.url.ns, id, uuid_, generator.last_issued_unix_millis(),
                     FinalWatermark::kRaise, &ignored);
      return kRedisUnavailable;
    }
    worker_id_ = id;
    held_ = true;
    previous_watermark_ms_ = previous;
    // A short wait keeps a quick restart from failing its first call; a
    // longer one is refused (kBehindWatermark) until the clock passes it.
    if (previous > 0 && !generator.AdvancePast(previous, options_.max_watermark_wait).ok()) {
      Log(LogLevel::kWarning,
          "the clock is " + std::to_string(previous - clock_.NowUnixMicros() / 1000) +
              " ms behind worker id " + std::to_string(id) + "'s watermark (" +
              std::to_string(previous) + " ms); IDs are refused until the clock passes it");
    }
    confirmed_at_micros_ = sent;
    if (Status s = generator.Resume(id, deadline); !s.ok()) {
      // Ours but unusable: give it back now rather than hold it to expiry.
      held_ = false;
      std::string ignored;
      lease::Release(client_, options_.url.ns, id, uuid_,
                     std::max(previous_watermark_ms_, generator.last_issued_unix_millis()),
                     FinalWatermark::kExact, &ignored);
      return s;
    }
    PublishHolder(client_, options_.url.ns, id, uuid_);
    Log(LogLevel::kInfo, "Assigned worker-id: " + std::to_string(id) + " (lease " + uuid_ + ")");
    return Status::Ok();
  }
  Log(LogLevel::kWarning, "no free worker id between " + std::to_string(options_.min_worker_id) +
                              " and " + std::to_string(options_.max_worker_id));
  return kNoFreeWorkerId;
}

Status SyncRedisLease::Release(GeneratorCore& generator) {
  std::lock_guard lock(mu_);
  generator.Suspend();
  if (abandoned_ || !held_) return Status::Ok();
  held_ = false;
  std::string error_reply;
  // Suspended: the last slot is final. The floor covers the previous
  // holders' watermark only to the tick, hence the max.
  const LeaseReply reply = lease::Release(
      client_, options_.url.ns, worker_id_, uuid_,
      std::max(previous_watermark_ms_, generator.last_issued_unix_millis()), FinalWatermark::kExact,
      &error_reply);
  if (reply == LeaseReply::kNoAnswer) return kRedisUnavailable;
  return Status::Ok();
}

void SyncRedisLease::Abandon() {
  std::lock_guard lock(mu_);
  abandoned_ = true;
  held_ = false;
}

}  // namespace katsubushi::lease
