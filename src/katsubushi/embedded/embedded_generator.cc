#include "katsubushi/embedded/embedded_generator.h"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <set>

#include "katsubushi/clock.h"
#include "katsubushi/lease/redis_url.h"
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
std::set<Generator*>* g_registry = nullptr;  // leaked on purpose: used by atfork handlers
std::atomic<uint64_t> g_fork_generation{0};

void RegisterForFork(Generator* generator) {
  static std::once_flag once;
  std::call_once(once, [] {
    g_registry = new std::set<Generator*>();
    pthread_atfork([] { g_registry_mu.lock(); }, [] { g_registry_mu.unlock(); },
                   [] {
                     g_fork_generation.fetch_add(1);
                     for (Generator* g : *g_registry) g->Suspend();
                     g_registry_mu.unlock();
                   });
  });
  std::lock_guard lock(g_registry_mu);
  g_registry->insert(generator);
}

void UnregisterForFork(Generator* generator) {
  std::lock_guard lock(g_registry_mu);
  if (g_registry != nullptr) g_registry->erase(generator);
}

}  // namespace

// The generator's LeaseRefresher: the fork check first, then the Redis lease
// (if any). A static worker id is only ever suspended by a fork or Close().
class EmbeddedGenerator::Lease final : public LeaseRefresher {
 public:
  Lease(const EmbeddedGenerator& owner, std::unique_ptr<lease::SyncRedisLease> redis)
      : owner_(owner), redis_(std::move(redis)) {}

  Status Refresh(Generator& generator, Reason reason) override {
    if (owner_.forked()) return kForked;
    if (owner_.closed_.load()) return kGeneratorClosed;
    if (!redis_) return reason == Reason::kIdle ? Status::Ok() : kNoWorkerId;
    return redis_->Refresh(generator, reason);
  }

  lease::SyncRedisLease* redis() { return redis_.get(); }

 private:
  const EmbeddedGenerator& owner_;
  std::unique_ptr<lease::SyncRedisLease> redis_;
};

Result<std::unique_ptr<EmbeddedGenerator>> EmbeddedGenerator::Open(const EmbeddedOptions& options) {
  const IdLayout layout = options.js_safe_id ? IdLayout::JsSafe() : IdLayout::Default();
  if ((options.worker_id == 0) == options.redis_url.empty()) return kBadEmbeddedOptions;

  std::unique_ptr<EmbeddedGenerator> self(new EmbeddedGenerator());
  self->fork_generation_ = g_fork_generation.load();
  std::unique_ptr<lease::SyncRedisLease> redis;
  if (options.worker_id == 0) {
    Result<lease::RedisUrl> url = lease::ParseRedisUrl(options.redis_url);
    if (!url.ok()) return url.status();
    lease::SyncLeaseOptions lease_options;
    lease_options.url = *url;
    lease_options.min_worker_id = options.min_worker_id == 0 ? 1 : options.min_worker_id;
    lease_options.max_worker_id =
        options.max_worker_id == 0 ? layout.max_worker_id() : options.max_worker_id;
    if (lease_options.min_worker_id > lease_options.max_worker_id ||
        lease_options.max_worker_id > layout.max_worker_id()) {
      return Status(StatusCode::kInvalidArgument, "worker id range is empty or outside the layout");
    }
    if (options.lease_ttl < std::chrono::seconds(2) || options.lease_ttl > std::chrono::hours(1)) {
      return Status(StatusCode::kInvalidArgument, "lease TTL must be between 2 s and 1 h");
    }
    lease_options.ttl = options.lease_ttl;
    lease_options.log = options.log;
    redis = std::make_unique<lease::SyncRedisLease>(SystemClock::Instance(), std::move(lease_options));
  } else if (options.worker_id > layout.max_worker_id()) {
    return Status(StatusCode::kInvalidArgument, "worker id is out of the layout's range");
  }
  self->lease_ = std::make_unique<Lease>(*self, std::move(redis));

  GeneratorOptions generator_options;
  generator_options.layout = layout;
  generator_options.worker_id = options.worker_id;
  generator_options.start_suspended = options.worker_id == 0;
  generator_options.max_clock_rollback = options.max_clock_rollback;
  generator_options.refresher = self->lease_.get();
  if (options.worker_id == 0) generator_options.revalidate_after_idle = options.revalidate_after_idle;
  Result<std::unique_ptr<Generator>> generator =
      Generator::Create(SystemClock::Instance(), generator_options);
  if (!generator.ok()) return generator.status();
  self->generator_ = std::move(generator).value();
  RegisterForFork(self->generator_.get());
  return self;
}

EmbeddedGenerator::~EmbeddedGenerator() {
  Close();
  if (generator_) UnregisterForFork(generator_.get());
}

bool EmbeddedGenerator::forked() const { return g_fork_generation.load() != fork_generation_; }

bool EmbeddedGenerator::leased() const { return lease_ && lease_->redis() != nullptr; }

Result<uint64_t> EmbeddedGenerator::Next() { return generator_->Next(); }

Status EmbeddedGenerator::NextN(std::span<uint64_t> out) { return generator_->NextN(out); }

Status EmbeddedGenerator::InvocationBegin() {
  if (forked()) return kForked;
  if (!leased() || closed_) return Status::Ok();
  return lease_->redis()->Revalidate(*generator_);
}

Status EmbeddedGenerator::EnsureWorkerId() {
  if (!generator_->suspended()) return Status::Ok();
  return lease_->Refresh(*generator_, LeaseRefresher::Reason::kSuspended);
}

Result<uint32_t> EmbeddedGenerator::WorkerId() const {
  if (forked()) return kForked;
  if (generator_->suspended()) return kNoWorkerId;
  return generator_->worker_id();
}

Status EmbeddedGenerator::Close() {
  if (!generator_ || closed_.exchange(true)) return Status::Ok();
  generator_->Suspend();
  // A forked child's lease is its parent's: never release it from here.
  if (forked() || !leased()) return Status::Ok();
  return lease_->redis()->Release(*generator_);
}

}  // namespace katsubushi
