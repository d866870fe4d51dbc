#include "katsubushi/lease/redis_lease_keeper.h"

#include <set>

namespace katsubushi::lease {
namespace {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

std::string ExpiryArgs(milliseconds expiry, bool* seconds) {
  // raus sends SET ... EX <seconds>; do the same when the expiry allows.
  *seconds = expiry.count() % 1000 == 0;
  return std::to_string(*seconds ? expiry.count() / 1000 : expiry.count());
}

}  // namespace

RedisLeaseKeeper::RedisLeaseKeeper(Generator& generator, Clock& clock, RedisLeaseOptions options)
    : generator_(generator),
      clock_(clock),
      options_(std::move(options)),
      channel_(BroadcastChannel(options_.url.ns)),
      client_(options_.url, options_.timeouts),
      rng_(std::random_device{}()) {}

RedisLeaseKeeper::~RedisLeaseKeeper() { Stop(); }

void RedisLeaseKeeper::Start() { thread_ = std::thread([this] { Run(); }); }

void RedisLeaseKeeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_requested_.store(true);
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

LeaseCounters RedisLeaseKeeper::counters() const {
  return LeaseCounters{acquisitions_.load(), losses_.load(), renew_failures_.load()};
}

void RedisLeaseKeeper::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

bool RedisLeaseKeeper::SleepUntil(SteadyTime deadline) {
  std::unique_lock lock(mu_);
  wake_.wait_until(lock, deadline, [this] { return stopping_; });
  return !stopping_;
}

void RedisLeaseKeeper::Run() {
  Log(LogLevel::kInfo, "Waiting for worker-id automated assignment (between " +
                           std::to_string(options_.min_worker_id) + " and " +
                           std::to_string(options_.max_worker_id) + ") with " +
                           options_.url.Redacted());
  const milliseconds renew_interval = RenewIntervalFor(options_.lease_expiry);
  milliseconds backoff = options_.retry_min;
  SteadyTime next_renewal = std::chrono::steady_clock::now();
  while (!stop_requested_.load()) {
    if (!held_) {
      if (Acquire()) {
        backoff = options_.retry_min;
        next_renewal = std::chrono::steady_clock::now() + renew_interval;
        continue;
      }
      // Jitter spreads a fleet that lost Redis together.
      std::uniform_int_distribution<int64_t> jitter(0, backoff.count() / 2);
      if (!SleepUntil(std::chrono::steady_clock::now() + backoff + milliseconds(jitter(rng_)))) break;
      backoff = std::min(backoff * 2, options_.retry_max);
      continue;
    }
    if (!SleepUntil(next_renewal)) break;
    next_renewal += renew_interval;
    const SteadyTime now = std::chrono::steady_clock::now();
    if (next_renewal < now) next_renewal = now + renew_interval;  // we were paused

    switch (Renew()) {
      case Renewal::kRenewed:
        if (fenced_) {
          Log(LogLevel::kInfo, "worker id " + std::to_string(worker_id_) +
                                   " lease confirmed again; issuing IDs");
          fenced_ = false;
        }
        break;
      case Renewal::kLost:
        generator_.Suspend();
        held_ = false;
        fenced_ = false;
        losses_.fetch_add(1);
        Log(LogLevel::kError, "worker id " + std::to_string(worker_id_) +
                                  " lease lost (the key is no longer ours); stopped issuing, "
                                  "acquiring a new worker id");
        break;
      case Renewal::kNoAnswer:
        renew_failures_.fetch_add(1);
        if (!fenced_ && clock_.NowUnixMicros() >= valid_until_micros_) {
          fenced_ = true;
          Log(LogLevel::kError, "worker id " + std::to_string(worker_id_) +
                                    " lease could not be confirmed before its deadline; "
                                    "not issuing IDs until Redis answers: " + client_.error());
        } else if (renew_failures_.load() % 10 == 1) {
          Log(LogLevel::kWarning, "cannot renew the worker id lease (still issuing until the "
                                  "lease deadline): " + client_.error());
        }
        break;
    }
  }
  generator_.Suspend();
  if (held_) Release();
}

bool RedisLeaseKeeper::Acquire() {
  uuid_ = NewUuid(rng_);
  std::set<uint32_t> used;
  const bool listened = client_.Listen(
      channel_, options_.discovery,
      [&](std::string_view payload) {
        std::optional<Broadcast> b = ParseBroadcast(payload);
        if (!b) {
          Log(LogLevel::kWarning, "ignoring a broadcast that is not <uuid>:<id>: " +
                                      std::string(payload.substr(0, 100)));
          return;
        }
        if (b->uuid == uuid_) return;
        if (used.insert(b->worker_id).second) {
          Log(LogLevel::kInfo, "discovered worker id " + std::to_string(b->worker_id) +
                                   " in use by " + b->uuid);
        }
      },
      [this] { return !stop_requested_.load(); });
  if (!listened) {
    Log(LogLevel::kWarning, "cannot reach Redis to acquire a worker id (retrying): " + client_.error());
    return false;
  }
  if (stop_requested_.load()) return false;

  bool in_seconds = false;
  const std::string expiry = ExpiryArgs(options_.lease_expiry, &in_seconds);
  for (;;) {
    std::vector<uint32_t> candidates = Candidates(options_.min_worker_id, options_.max_worker_id, used);
    if (candidates.empty()) {
      Log(LogLevel::kWarning, "no free worker id between " + std::to_string(options_.min_worker_id) +
                                  " and " + std::to_string(options_.max_worker_id) +
                                  "; waiting for one to be released");
      return false;
    }
    std::uniform_int_distribution<size_t> pick(0, candidates.size() - 1);
    const uint32_t id = candidates[pick(rng_)];
    const std::string key = LockKey(options_.url.ns, id);

    const int64_t sent_micros = clock_.NowUnixMicros();
    RedisReply reply;
    if (!client_.Run({"SET", key, uuid_, in_seconds ? "EX" : "PX", expiry, "NX"}, &reply)) {
      Log(LogLevel::kWarning, "cannot reach Redis to acquire a worker id (retrying): " + client_.error());
      return false;
    }
    if (reply.is_error()) {
      Log(LogLevel::kWarning, "SET " + key + " failed: " + reply.str);
      return false;
    }
    if (reply.type == RedisReply::Type::kNil) {
      Log(LogLevel::kDebug, "worker id " + std::to_string(id) + " is taken");
      used.insert(id);
      continue;
    }

    // The id is ours. Its watermark: the last ms its previous holder issued.
    worker_id_ = id;
    held_ = true;
    RedisReply watermark;
    if (!client_.Run({"GET", WatermarkKey(options_.url.ns, id)}, &watermark) || watermark.is_error()) {
      Log(LogLevel::kWarning, "cannot read the watermark of worker id " + std::to_string(id) +
                                  "; releasing it and retrying: " + client_.error());
      Release();
      return false;
    }
    int64_t watermark_millis = 0;
    if (watermark.type == RedisReply::Type::kString) {
      watermark_millis = std::strtoll(watermark.str.c_str(), nullptr, 10);
    }
    if (watermark_millis > 0) {
      if (Status s = generator_.AdvancePast(watermark_millis, options_.max_watermark_wait); !s.ok()) {
        Log(LogLevel::kWarning, "the clock is behind worker id " + std::to_string(id) +
                                    "'s watermark (" + std::to_string(watermark_millis) +
                                    " ms); IDs are refused until it passes");
      }
    }
    valid_until_micros_ = LeaseValidUntilMicros(sent_micros, options_.lease_expiry);
    if (Status s = generator_.Resume(id, valid_until_micros_); !s.ok()) {
      Log(LogLevel::kError, "worker id " + std::to_string(id) + " does not fit the ID layout");
      Release();
      return false;
    }
    acquisitions_.fetch_add(1);
    Log(LogLevel::kInfo, "Assigned worker-id: " + std::to_string(id) + " (lease " + uuid_ + ")");
    return true;
  }
}

RedisLeaseKeeper::Renewal RedisLeaseKeeper::Renew() {
  RedisReply reply;
  if (!client_.Run({"PUBLISH", channel_, BroadcastPayload(uuid_, worker_id_)}, &reply)) {
    return Renewal::kNoAnswer;
  }
  // Sent-time, not reply-time: the key's new expiry counts from no earlier.
  const int64_t sent_micros = clock_.NowUnixMicros();
  const std::string last_ms = std::to_string(generator_.last_issued_unix_millis());
  if (!client_.Run({"EVAL", kRenewScript, "2", LockKey(options_.url.ns, worker_id_),
                    WatermarkKey(options_.url.ns, worker_id_), uuid_,
                    std::to_string(options_.lease_expiry.count()), last_ms,
                    std::to_string(std::chrono::milliseconds(kWatermarkTtl).count())},
                   &reply)) {
    return Renewal::kNoAnswer;
  }
  if (reply.is_error()) {
    Log(LogLevel::kWarning, "lease renewal script failed: " + reply.str);
    return Renewal::kNoAnswer;
  }
  if (reply.type != RedisReply::Type::kInteger || reply.integer != 1) return Renewal::kLost;
  valid_until_micros_ = LeaseValidUntilMicros(sent_micros, options_.lease_expiry);
  generator_.ExtendLease(valid_until_micros_);
  return Renewal::kRenewed;
}

void RedisLeaseKeeper::Release() {
  held_ = false;
  RedisReply reply;
  const std::string last_ms = std::to_string(generator_.last_issued_unix_millis());
  const bool answered =
      client_.Run({"EVAL", kReleaseScript, "2", LockKey(options_.url.ns, worker_id_),
                   WatermarkKey(options_.url.ns, worker_id_), uuid_, "0", last_ms,
                   std::to_string(std::chrono::milliseconds(kWatermarkTtl).count())},
                  &reply);
  if (!answered || reply.is_error()) {
    Log(LogLevel::kWarning, "could not release worker id " + std::to_string(worker_id_) +
                                " (it frees itself when the key expires): " +
                                (answered ? reply.str : client_.error()));
  } else if (reply.integer == 1) {
    Log(LogLevel::kInfo, "released worker id " + std::to_string(worker_id_));
  } else {
    Log(LogLevel::kWarning, "worker id " + std::to_string(worker_id_) +
                                " was no longer ours at release; left it alone");
  }
}

}  // namespace katsubushi::lease
