#include "katsubushi/lease/sync_redis_lease.h"

#include <algorithm>
#include <vector>

#include "katsubushi/lease/lease_commands.h"

namespace katsubushi::lease {
namespace {

// A confirmation this recent answers a concurrent caller's request too.
constexpr int64_t kJustConfirmedMicros = 100'000;

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

Status SyncRedisLease::Refresh(GeneratorCore& generator, Reason reason) {
  std::lock_guard lock(mu_);
  if (abandoned_) return kNoWorkerId;
  const int64_t now = clock_.NowUnixMicros();
  // Another thread may have refreshed while this one waited for the mutex.
  // Before the deadline a kDeadline call is still due when nobody confirmed
  // just now: a batch whose last ID would be stamped at the deadline asks.
  const bool current = held_ && !generator.suspended() && now < generator.lease_valid_until_micros();
  if (current && (reason == Reason::kSuspended || now - confirmed_at_micros_ < kJustConfirmedMicros)) {
    return Status::Ok();
  }
  if (!held_ || generator.suspended()) return AcquireLocked(generator);
  return RenewLocked(generator);
}

Status SyncRedisLease::Revalidate(GeneratorCore& generator) {
  std::lock_guard lock(mu_);
  if (abandoned_ || !held_) return Status::Ok();  // acquired lazily at the first ID
  return RenewLocked(generator);
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
  const LeaseReply reply = Renew(client_, options_.url.ns, worker_id_, uuid_, options_.ttl,
                                 LastMillisBefore(deadline), &error_reply);
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
      Log(LogLevel::kWarning, "cannot acquire a worker id: " +
                                  (error_reply.empty() ? client_.error() : error_reply));
      return kRedisUnavailable;
    }
    // The id is ours: promise what this lease allows before anything is
    // issued under it, and learn what the previous holders promised.
    const int64_t deadline = DeadlineAfter(sent);
    int64_t previous = 0;
    const LeaseReply claim = ClaimWatermark(client_, options_.url.ns, id, uuid_,
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
    if (Status s = generator.Resume(id, deadline); !s.ok()) return s;
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
