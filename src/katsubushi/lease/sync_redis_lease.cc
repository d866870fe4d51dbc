#include "katsubushi/lease/sync_redis_lease.h"

#include <algorithm>
#include <vector>

#include "katsubushi/lease/lease_commands.h"

namespace katsubushi::lease {

SyncRedisLease::SyncRedisLease(Clock& clock, SyncLeaseOptions options)
    : clock_(clock),
      options_(std::move(options)),
      client_(options_.url, options_.timeouts),
      rng_(std::random_device{}()) {}

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
  const bool current = held_ && !generator.suspended() && now < generator.lease_valid_until_micros();
  if (current && (reason != Reason::kIdle || now - confirmed_at_micros_ < 100'000)) {
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

Status SyncRedisLease::RenewLocked(GeneratorCore& generator) {
  const int64_t sent = clock_.NowUnixMicros();
  std::string error_reply;
  const LeaseReply reply = Renew(client_, options_.url.ns, worker_id_, uuid_, options_.ttl,
                                 generator.last_issued_unix_millis(), &error_reply);
  if (reply == LeaseReply::kOk) {
    PublishHolder(client_, options_.url.ns, worker_id_, uuid_);  // best effort, for Go discovery
    confirmed_at_micros_ = sent;
    // The renewal point (a third of the TTL) comes long before the fencing
    // deadline, so crossing it renews; the deadline stays the hard bound.
    generator.ExtendLease(std::min(sent + std::chrono::microseconds(options_.ttl).count() / 3,
                                   LeaseValidUntilMicros(sent, options_.ttl)));
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
  uuid_ = NewUuid(rng_);
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
    worker_id_ = id;
    held_ = true;
    const std::optional<int64_t> watermark = ReadWatermark(client_, options_.url.ns, id);
    if (!watermark) {
      std::string ignored;
      lease::Release(client_, options_.url.ns, id, uuid_, 0, &ignored);
      held_ = false;
      return kRedisUnavailable;
    }
    if (*watermark > 0) generator.AdvancePast(*watermark, options_.max_watermark_wait);
    confirmed_at_micros_ = sent;
    if (Status s = generator.Resume(
            id, std::min(sent + std::chrono::microseconds(options_.ttl).count() / 3,
                         LeaseValidUntilMicros(sent, options_.ttl)));
        !s.ok()) {
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
  const LeaseReply reply = lease::Release(client_, options_.url.ns, worker_id_, uuid_,
                                          generator.last_issued_unix_millis(), &error_reply);
  if (reply == LeaseReply::kNoAnswer) return kRedisUnavailable;
  return Status::Ok();
}

void SyncRedisLease::Abandon() {
  std::lock_guard lock(mu_);
  abandoned_ = true;
  held_ = false;
}

}  // namespace katsubushi::lease
