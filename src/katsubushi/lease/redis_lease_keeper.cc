#include "katsubushi/lease/redis_lease_keeper.h"

#include <algorithm>
#include <set>

#include "katsubushi/lease/lease_commands.h"

namespace katsubushi::lease {
namespace {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

}  // namespace

RedisLeaseKeeper::RedisLeaseKeeper(GeneratorCore& generator, Clock& clock,
                                   RedisLeaseOptions options)
    : generator_(generator),
      clock_(clock),
      options_(std::move(options)),
      channel_(BroadcastChannel(options_.url.ns)),
      client_(options_.url, options_.timeouts),
      rng_(SeededRng()) {}

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
        if (awaited_watermark_ms_ > 0 && clock_.NowUnixMicros() / 1000 > awaited_watermark_ms_) {
          Log(LogLevel::kInfo, "the clock passed worker id " + std::to_string(worker_id_) +
                                   "'s watermark; issuing IDs");
          awaited_watermark_ms_ = 0;
        }
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
  uuid_ = NewUuid();
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

    const int64_t sent_micros = clock_.NowUnixMicros();
    std::string error_reply;
    const LeaseReply set = SetIfAbsent(client_, options_.url.ns, id, uuid_, options_.lease_expiry,
                                       &error_reply);
    if (set == LeaseReply::kNoAnswer) {
      Log(LogLevel::kWarning, "cannot acquire a worker id (retrying): " +
                                  (error_reply.empty() ? client_.error() : error_reply));
      return false;
    }
    if (set == LeaseReply::kNotOurs) {
      Log(LogLevel::kDebug, "worker id " + std::to_string(id) + " is taken");
      used.insert(id);
      continue;
    }

    // The id is ours. Promise what this lease allows before anything is
    // issued under it, and learn what the previous holders promised.
    worker_id_ = id;
    held_ = true;
    const int64_t valid_until = LeaseValidUntilMicros(sent_micros, options_.lease_expiry);
    int64_t previous = 0;
    switch (Confirm(client_, options_.url.ns, id, uuid_, options_.lease_expiry,
                    LastMillisBefore(valid_until), &previous, &error_reply)) {
      case LeaseReply::kOk:
        break;
      case LeaseReply::kNotOurs:  // expired between the two commands
        held_ = false;
        used.insert(id);
        continue;
      case LeaseReply::kNoAnswer:
        Log(LogLevel::kWarning, "cannot record the watermark of worker id " + std::to_string(id) +
                                    "; releasing it and retrying: " +
                                    (error_reply.empty() ? client_.error() : error_reply));
        previous_watermark_ms_ = -1;  // unknown: the release may only raise it
        Release();
        return false;
    }
    previous_watermark_ms_ = previous;
    awaited_watermark_ms_ = 0;
    if (previous > 0 && !generator_.AdvancePast(previous, milliseconds(0)).ok()) {
      // Not waited out here: the renewals must go on meanwhile (a wait longer
      // than the lease would lose the key), and the generator refuses on its
      // own until the clock passes the floor.
      awaited_watermark_ms_ = previous;
      Log(LogLevel::kWarning,
          "the clock is " + std::to_string(previous - clock_.NowUnixMicros() / 1000) +
              " ms behind worker id " + std::to_string(id) + "'s watermark (" +
              std::to_string(previous) +
              " ms, the latest its previous holders may have issued); IDs are refused until "
              "the clock passes it");
    }
    valid_until_micros_ = valid_until;
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
  if (!PublishHolder(client_, options_.url.ns, worker_id_, uuid_)) return Renewal::kNoAnswer;
  // Sent-time, not reply-time: the key's new expiry counts from no earlier.
  const int64_t sent_micros = clock_.NowUnixMicros();
  std::string error_reply;
  const int64_t valid_until = LeaseValidUntilMicros(sent_micros, options_.lease_expiry);
  switch (Confirm(client_, options_.url.ns, worker_id_, uuid_, options_.lease_expiry,
                  LastMillisBefore(valid_until), nullptr, &error_reply)) {
    case LeaseReply::kOk:
      // Redis records the promise first; only then may the generator use it.
      valid_until_micros_ = valid_until;
      generator_.ExtendLease(valid_until_micros_);
      return Renewal::kRenewed;
    case LeaseReply::kNotOurs:
      return Renewal::kLost;
    case LeaseReply::kNoAnswer:
      if (!error_reply.empty()) Log(LogLevel::kWarning, "lease renewal script failed: " + error_reply);
      return Renewal::kNoAnswer;
  }
  return Renewal::kNoAnswer;
}

void RedisLeaseKeeper::Release() {
  held_ = false;
  std::string error_reply;
  // The generator is suspended, so its last slot is final. Its floor covers
  // the previous holders' watermark only to the tick, hence the max.
  const bool known = previous_watermark_ms_ >= 0;
  switch (lease::Release(client_, options_.url.ns, worker_id_, uuid_,
                         std::max(previous_watermark_ms_, generator_.last_issued_unix_millis()),
                         known ? FinalWatermark::kExact : FinalWatermark::kRaise, &error_reply)) {
    case LeaseReply::kOk:
      Log(LogLevel::kInfo, "released worker id " + std::to_string(worker_id_));
      break;
    case LeaseReply::kNotOurs:
      Log(LogLevel::kWarning, "worker id " + std::to_string(worker_id_) +
                                  " was no longer ours at release; left it alone");
      break;
    case LeaseReply::kNoAnswer:
      Log(LogLevel::kWarning, "could not release worker id " + std::to_string(worker_id_) +
                                  " (it frees itself when the key expires): " +
                                  (error_reply.empty() ? client_.error() : error_reply));
      break;
  }
}

}  // namespace katsubushi::lease
