#include "katsubushi/embedded/generator.h"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <set>

#include "katsubushi/clock.h"
#include "katsubushi/redis/redis_url.h"
#include "katsubushi/lease/sync_redis_lease.h"

namespace katsubushi {
namespace {

// Fork safety. The child of a fork gets a copy of every generator, worker id
// and lease included; issuing from both would duplicate IDs. So at fork the
// child suspends every open generator and bumps a generation number; each
// generator remembers the generation it was opened in and refuses forever
// once it differs. The registry's mutex is held across fork() (prepare /
// parent / child handlers), so the child never finds it locked.
std::mutex g_registry_mu;
std::set<GeneratorCore*>* g_registry = nullptr;  // leaked on purpose: used by atfork handlers
std::atomic<uint64_t> g_fork_generation{0};

void RegisterForFork(GeneratorCore* generator) {
  static std::once_flag once;
  std::call_once(once, [] {
    g_registry = new std::set<GeneratorCore*>();
    pthread_atfork([] { g_registry_mu.lock(); }, [] { g_registry_mu.unlock(); },
                   [] {
                     g_fork_generation.fetch_add(1);
                     for (GeneratorCore* g : *g_registry) g->Suspend();
                     g_registry_mu.unlock();
                   });
  });
  std::lock_guard lock(g_registry_mu);
  g_registry->insert(generator);
}

void UnregisterForFork(GeneratorCore* generator) {
  std::lock_guard lock(g_registry_mu);
  if (g_registry != nullptr) g_registry->erase(generator);
}

}  // namespace

// The generator's LeaseRefresher: the fork check first, then the Redis lease
// (if any). A static worker id is only ever suspended by a fork or Close().
class Generator::Lease final : public LeaseRefresher {
 public:
  Lease(const Generator& owner, std::unique_ptr<lease::SyncRedisLease> redis)
      : owner_(owner), redis_(std::move(redis)) {}

  Status Refresh(GeneratorCore& generator, Reason reason) override {
    if (owner_.forked()) return kForked;
    if (owner_.closed_.load()) return kGeneratorClosed;
    if (!redis_) return reason == Reason::kIdle ? Status::Ok() : kNoWorkerId;
    return redis_->Refresh(generator, reason);
  }

  lease::SyncRedisLease* redis() { return redis_.get(); }

 private:
  const Generator& owner_;
  std::unique_ptr<lease::SyncRedisLease> redis_;
};

Result<std::unique_ptr<Generator>> Generator::Open(const GeneratorConfig& config) {
  const IdLayout layout = config.js_safe_id ? IdLayout::JsSafe() : IdLayout::Default();
  if ((config.worker_id == 0) == config.redis_url.empty()) return kBadGeneratorConfig;

  std::unique_ptr<Generator> self(new Generator());
  self->fork_generation_ = g_fork_generation.load();
  std::unique_ptr<lease::SyncRedisLease> redis;
  if (config.worker_id == 0) {
    Result<redis::RedisUrl> url = redis::ParseRedisUrl(config.redis_url);
    if (!url.ok()) return url.status();
    lease::SyncLeaseOptions lease_options;
    lease_options.redis.url = *url;
    lease_options.redis.tls = {config.redis_tls_ca_file, config.redis_tls_cert_file, config.redis_tls_key_file,
                               config.redis_tls_skip_verify};
    lease_options.redis.replicas = {config.redis_min_replicas, config.redis_replica_timeout};
    lease_options.min_worker_id = config.min_worker_id == 0 ? 1 : config.min_worker_id;
    lease_options.max_worker_id =
        config.max_worker_id == 0 ? layout.max_worker_id() : config.max_worker_id;
    if (lease_options.min_worker_id > lease_options.max_worker_id ||
        lease_options.max_worker_id > layout.max_worker_id()) {
      return Status(StatusCode::kInvalidArgument, "worker id range is empty or outside the layout");
    }
    if (config.lease_ttl < std::chrono::seconds(2) || config.lease_ttl > std::chrono::hours(1)) {
      return Status(StatusCode::kInvalidArgument, "lease TTL must be between 2 s and 1 h");
    }
    lease_options.ttl = config.lease_ttl;
    lease_options.log = config.log;
    redis = std::make_unique<lease::SyncRedisLease>(SystemClock::Instance(), std::move(lease_options));
  } else if (config.worker_id > layout.max_worker_id()) {
    return Status(StatusCode::kInvalidArgument, "worker id is out of the layout's range");
  }
  self->lease_ = std::make_unique<Lease>(*self, std::move(redis));

  GeneratorOptions generator_options;
  generator_options.layout = layout;
  generator_options.worker_id = config.worker_id;
  generator_options.start_suspended = config.worker_id == 0;
  generator_options.max_clock_rollback = config.max_clock_rollback;
  generator_options.refresher = self->lease_.get();
  if (config.worker_id == 0) generator_options.revalidate_after_idle = config.revalidate_after_idle;
  Result<std::unique_ptr<GeneratorCore>> generator =
      GeneratorCore::Create(SystemClock::Instance(), generator_options);
  if (!generator.ok()) return generator.status();
  self->generator_ = std::move(generator).value();
  RegisterForFork(self->generator_.get());
  return self;
}

Generator::~Generator() {
  Close();
  if (generator_) UnregisterForFork(generator_.get());
}

bool Generator::forked() const { return g_fork_generation.load() != fork_generation_; }

bool Generator::leased() const { return lease_ && lease_->redis() != nullptr; }

Result<uint64_t> Generator::Next() { return generator_->Next(); }

Status Generator::NextN(std::span<uint64_t> out) { return generator_->NextN(out); }

Result<std::vector<uint64_t>> Generator::NextN(size_t n) {
  // Checked before allocating: n is the caller's number, not memory we owe it.
  if (n == 0 || n > GeneratorCore::kMaxIdsPerCall) return kBadIdCount;
  std::vector<uint64_t> ids(n);
  if (const Status s = generator_->NextN(ids); !s.ok()) return s;
  return ids;
}

Status Generator::InvocationBegin() {
  if (forked()) return kForked;
  if (!leased() || closed_) return Status::Ok();
  return lease_->redis()->Revalidate(*generator_);
}

Status Generator::EnsureWorkerId() {
  if (!generator_->suspended()) return Status::Ok();
  return lease_->Refresh(*generator_, LeaseRefresher::Reason::kSuspended);
}

Result<uint32_t> Generator::WorkerId() const {
  if (forked()) return kForked;
  if (generator_->suspended()) return kNoWorkerId;
  return generator_->worker_id();
}

Status Generator::Close() {
  if (!generator_ || closed_.exchange(true)) return Status::Ok();
  generator_->Suspend();
  // A forked child's lease is its parent's: never release it from here.
  if (forked() || !leased()) return Status::Ok();
  return lease_->redis()->Release(*generator_);
}

}  // namespace katsubushi
