#include "katsubushi/lease/worker_id_lease.h"

#include <algorithm>

#include "katsubushi/lease/raus_protocol.h"

namespace katsubushi::lease {

Status RedisFailure(const std::string& error) {
  if (error.find("certificate verify failed") != std::string::npos) return kRedisTlsVerifyFailed;
  if (error.find("TLS") != std::string::npos) return kRedisTlsFailed;
  return kRedisUnavailable;
}

namespace {

// The Redis client reports (failovers, eviction) through the lease's log.
redis::RedisClientOptions ClientOptionsOf(const WorkerIdLeaseOptions& options) {
  redis::RedisClientOptions client = options.redis;
  client.log = options.log;
  return client;
}

}  // namespace

WorkerIdLease::WorkerIdLease(Clock& clock, WorkerIdLeaseOptions options)
    : clock_(clock), options_(std::move(options)), client_(ClientOptionsOf(options_)), rng_(SeededRng()) {}

void WorkerIdLease::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

void WorkerIdLease::SetError(const std::string& error_reply) {
  error_ = error_reply.empty() ? client_.error() : error_reply;
}

bool WorkerIdLease::Discover(std::chrono::milliseconds duration, const std::function<bool()>& keep_going,
                             std::set<uint32_t>* used) {
  const bool listened = client_.Listen(
      BroadcastChannel(options_.redis.url.ns), duration,
      [&](std::string_view payload) {
        std::optional<Broadcast> b = ParseBroadcast(payload);
        if (!b) {
          Log(LogLevel::kWarning, "ignoring a broadcast that is not <uuid>:<id>: " +
                                      std::string(payload.substr(0, 100)));
          return;
        }
        if (held_ && b->uuid == uuid_) return;
        if (used->insert(b->worker_id).second) {
          Log(LogLevel::kInfo, "discovered worker id " + std::to_string(b->worker_id) + " in use by " + b->uuid);
        }
      },
      keep_going);
  if (!listened) error_ = client_.error();
  return listened;
}

bool WorkerIdLease::ReleaseUnknownSets() {
  while (!unknown_sets_.empty()) {
    const auto& [id, uuid] = unknown_sets_.back();
    std::string ignored;
    // Nothing was issued under it: the watermark is only raised (by 0: kept).
    if (lease::Release(client_, options_.redis.url.ns, id, uuid, 0, FinalWatermark::kRaise, &ignored) ==
        LeaseReply::kNoAnswer) {
      return false;  // still unreachable: one timeout per attempt, not one per key
    }
    unknown_sets_.pop_back();
  }
  return true;
}

Status WorkerIdLease::Acquire(GeneratorCore& generator, std::set<uint32_t> used) {
  generator.Suspend();
  held_ = false;
  if (!ReleaseUnknownSets()) {
    SetError({});
    return RedisFailure(error_);
  }
  uuid_ = NewUuid();
  const std::string& ns = options_.redis.url.ns;
  for (;;) {
    const std::vector<uint32_t> candidates = Candidates(options_.min_worker_id, options_.max_worker_id, used);
    if (candidates.empty()) {
      error_ = "no free worker id between " + std::to_string(options_.min_worker_id) + " and " +
               std::to_string(options_.max_worker_id);
      return kNoFreeWorkerId;
    }
    std::uniform_int_distribution<size_t> pick(0, candidates.size() - 1);
    const uint32_t id = candidates[pick(rng_)];

    const int64_t sent = clock_.NowUnixMicros();
    std::string error_reply;
    const LeaseReply set = SetIfAbsent(client_, ns, id, uuid_, options_.expiry, &error_reply);
    if (set == LeaseReply::kNotOurs) {
      used.insert(id);
      continue;
    }
    if (set == LeaseReply::kNoAnswer) {
      // Applied with its reply lost? Give it back as soon as Redis answers.
      if (error_reply.empty() && unknown_sets_.size() < kMaxUnknownSets) unknown_sets_.emplace_back(id, uuid_);
      SetError(error_reply);
      return RedisFailure(error_);
    }

    // The id is ours: promise what this lease allows before anything is
    // issued under it, and learn what the previous holders promised.
    const int64_t deadline = options_.deadline_after(sent);
    int64_t previous = 0;
    const LeaseReply claim = Confirm(client_, ns, id, uuid_, options_.expiry, LastMillisBefore(deadline),
                                     &previous, &error_reply);
    if (claim == LeaseReply::kNotOurs) {  // expired between the two commands
      used.insert(id);
      continue;
    }
    if (claim == LeaseReply::kNoAnswer) {
      SetError(error_reply);
      std::string ignored;
      // The previous watermark is unknown: the release may only raise it.
      if (lease::Release(client_, ns, id, uuid_, generator.last_issued_unix_millis(), FinalWatermark::kRaise,
                         &ignored) == LeaseReply::kNoAnswer &&
          unknown_sets_.size() < kMaxUnknownSets) {
        unknown_sets_.emplace_back(id, uuid_);
      }
      return RedisFailure(error_);
    }
    worker_id_ = id;
    previous_watermark_ms_ = previous;
    awaited_watermark_ms_ = 0;
    if (previous > 0 && !generator.AdvancePast(previous, options_.max_watermark_wait).ok()) {
      awaited_watermark_ms_ = previous;
      Log(LogLevel::kWarning,
          "the clock is " + std::to_string(previous - clock_.NowUnixMicros() / 1000) +
              " ms behind worker id " + std::to_string(id) + "'s watermark (" + std::to_string(previous) +
              " ms, the latest its previous holders may have issued); IDs are refused until the clock passes it");
    }
    if (Status s = generator.Resume(id, deadline); !s.ok()) {
      // Ours but unusable: give it back now rather than hold it to expiry.
      std::string ignored;
      lease::Release(client_, ns, id, uuid_, std::max(previous, generator.last_issued_unix_millis()),
                     FinalWatermark::kExact, &ignored);
      error_ = "worker id " + std::to_string(id) + " does not fit the ID layout";
      return s;
    }
    held_ = true;
    confirmed_at_micros_ = sent;
    PublishHolder(client_, ns, id, uuid_);  // best effort, for raus's discovery
    Log(LogLevel::kInfo, "Assigned worker-id: " + std::to_string(id) + " (lease " + uuid_ + ")");
    return Status::Ok();
  }
}

WorkerIdLease::Renewal WorkerIdLease::Renew(GeneratorCore& generator) {
  // Sent-time, not reply-time: the key's new expiry counts from no earlier.
  const int64_t sent = clock_.NowUnixMicros();
  const int64_t deadline = options_.deadline_after(sent);
  std::string error_reply;
  switch (Confirm(client_, options_.redis.url.ns, worker_id_, uuid_, options_.expiry, LastMillisBefore(deadline),
                  nullptr, &error_reply)) {
    case LeaseReply::kOk:
      // Redis (and its replicas) hold the promise first; only then may the
      // generator use it.
      confirmed_at_micros_ = sent;
      generator.ExtendLease(deadline);
      PublishHolder(client_, options_.redis.url.ns, worker_id_, uuid_);
      return Renewal::kRenewed;
    case LeaseReply::kNotOurs:
      generator.Suspend();
      held_ = false;
      error_ = "the key is no longer ours";
      return Renewal::kLost;
    case LeaseReply::kNoAnswer:
      SetError(error_reply);
      return Renewal::kNoAnswer;
  }
  return Renewal::kNoAnswer;
}

bool WorkerIdLease::Release(GeneratorCore& generator) {
  generator.Suspend();
  if (!held_) return true;
  held_ = false;
  std::string error_reply;
  // Suspended: the last slot is final. The floor covers the previous
  // holders' watermark only to the tick, hence the max.
  const LeaseReply reply =
      lease::Release(client_, options_.redis.url.ns, worker_id_, uuid_,
                     std::max(previous_watermark_ms_, generator.last_issued_unix_millis()), FinalWatermark::kExact,
                     &error_reply);
  switch (reply) {
    case LeaseReply::kOk:
      Log(LogLevel::kInfo, "released worker id " + std::to_string(worker_id_));
      return true;
    case LeaseReply::kNotOurs:
      Log(LogLevel::kWarning,
          "worker id " + std::to_string(worker_id_) + " was no longer ours at release; left it alone");
      return true;
    case LeaseReply::kNoAnswer:
      SetError(error_reply);
      Log(LogLevel::kWarning, "could not release worker id " + std::to_string(worker_id_) +
                                  " (it frees itself when the key expires): " + error_);
      return false;
  }
  return false;
}

}  // namespace katsubushi::lease
