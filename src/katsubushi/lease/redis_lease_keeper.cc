#include "katsubushi/lease/redis_lease_keeper.h"

#include <algorithm>
#include <set>

namespace katsubushi::lease {
namespace {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

WorkerIdLeaseOptions LeaseOptionsOf(const RedisLeaseOptions& options) {
  WorkerIdLeaseOptions out;
  out.redis = options.redis;
  out.min_worker_id = options.min_worker_id;
  out.max_worker_id = options.max_worker_id;
  out.expiry = options.lease_expiry;
  // Not waited out here: the renewals must go on meanwhile (a wait longer
  // than the lease would lose the key), and the generator refuses on its own
  // until the clock passes the floor.
  out.max_watermark_wait = milliseconds(0);
  const milliseconds expiry = options.lease_expiry;
  out.deadline_after = [expiry](int64_t sent_micros) { return LeaseValidUntilMicros(sent_micros, expiry); };
  out.log = options.log;
  return out;
}

}  // namespace

RedisLeaseKeeper::RedisLeaseKeeper(GeneratorCore& generator, Clock& clock, RedisLeaseOptions options)
    : generator_(generator),
      clock_(clock),
      options_(std::move(options)),
      rng_(SeededRng()),
      lease_(clock, LeaseOptionsOf(options_)) {}

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
  return LeaseCounters{acquisitions_.load(), losses_.load(), renew_failures_.load(),
                       lease_.redis_counters()};
}

Status RedisLeaseKeeper::redis_health() const {
  std::lock_guard lock(mu_);
  return redis_health_;
}

void RedisLeaseKeeper::SetRedisHealth(Status status) {
  std::lock_guard lock(mu_);
  redis_health_ = status;
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
                           options_.redis.url.Redacted());
  const milliseconds renew_interval = RenewIntervalFor(options_.lease_expiry);
  milliseconds backoff = options_.retry_min;
  SteadyTime next_renewal = std::chrono::steady_clock::now();
  while (!stop_requested_.load()) {
    if (!lease_.held()) {
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
    Renew();
  }
  lease_.Release(generator_);
}

bool RedisLeaseKeeper::Acquire() {
  std::set<uint32_t> used;
  if (!lease_.Discover(options_.discovery, [this] { return !stop_requested_.load(); }, &used)) {
    SetRedisHealth(RedisFailure(lease_.error()));
    if (lease_.error() != last_error_logged_) {
      last_error_logged_ = lease_.error();
      Log(LogLevel::kWarning, "cannot reach Redis to acquire a worker id (retrying): " + lease_.error());
    }
    return false;
  }
  if (stop_requested_.load()) return false;
  const Status acquired = lease_.Acquire(generator_, std::move(used));
  if (!acquired.ok()) {
    SetRedisHealth(acquired);
    if (lease_.error() != last_error_logged_) {
      last_error_logged_ = lease_.error();
      Log(LogLevel::kWarning, "cannot acquire a worker id (retrying): " + lease_.error());
    }
    return false;
  }
  last_error_logged_.clear();
  SetRedisHealth(Status::Ok());
  awaited_watermark_ms_ = lease_.awaited_watermark_ms();
  fenced_ = false;
  acquisitions_.fetch_add(1);
  return true;
}

void RedisLeaseKeeper::Renew() {
  const uint32_t id = lease_.worker_id();
  switch (lease_.Renew(generator_)) {
    case WorkerIdLease::Renewal::kRenewed:
      SetRedisHealth(Status::Ok());
      if (awaited_watermark_ms_ > 0 && clock_.NowUnixMicros() / 1000 > awaited_watermark_ms_) {
        Log(LogLevel::kInfo, "the clock passed worker id " + std::to_string(id) + "'s watermark; issuing IDs");
        awaited_watermark_ms_ = 0;
      }
      if (fenced_) {
        Log(LogLevel::kInfo, "worker id " + std::to_string(id) + " lease confirmed again; issuing IDs");
        fenced_ = false;
      }
      return;
    case WorkerIdLease::Renewal::kLost:
      fenced_ = false;
      losses_.fetch_add(1);
      Log(LogLevel::kError, "worker id " + std::to_string(id) +
                                " lease lost (the key is no longer ours); stopped issuing, "
                                "acquiring a new worker id");
      return;
    case WorkerIdLease::Renewal::kNoAnswer:
      renew_failures_.fetch_add(1);
      SetRedisHealth(RedisFailure(lease_.error()));
      if (!fenced_ && clock_.NowUnixMicros() >= generator_.lease_valid_until_micros()) {
        fenced_ = true;
        Log(LogLevel::kError, "worker id " + std::to_string(id) +
                                  " lease could not be confirmed before its deadline; "
                                  "not issuing IDs until Redis answers: " + lease_.error());
      } else if (renew_failures_.load() % 10 == 1) {
        Log(LogLevel::kWarning, "cannot renew the worker id lease (still issuing until the "
                                "lease deadline): " + lease_.error());
      }
      return;
  }
}

}  // namespace katsubushi::lease
