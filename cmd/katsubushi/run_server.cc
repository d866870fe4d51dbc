#include "run_server.h"

#include <stop_token>

#include <spdlog/spdlog.h>

#include "fronts.h"
#include "http/metrics.h"
#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/lease/redis_lease_keeper.h"
#include "katsubushi/lease/state_file_keeper.h"
#include "katsubushi/redis/redis_url.h"
#include "katsubushi/stats.h"
#include "katsubushi/version.h"
#include "logging.h"
#include "stop_signal.h"
#include "systemd/service_notifier.h"

namespace katsubushi {
namespace {

// Where the worker id comes from: a Redis lease (-redis without -worker-id),
// a static id with a restart watermark file (-state-file), or a static id.
struct WorkerIdSource {
  std::unique_ptr<lease::RedisLeaseKeeper> redis;
  std::unique_ptr<lease::StateFileKeeper> state_file;

  void Stop() {
    if (redis) redis->Stop();
    if (state_file) state_file->Stop();
  }

  std::string Metrics() const {
    if (!redis) return {};
    const lease::LeaseCounters c = redis->counters();
    return http::RenderLeaseMetrics({c.acquisitions, c.losses, c.renew_failures, c.redis.reconnects,
                                     c.redis.replica_ack_failures, c.redis.eviction_possible});
  }

  // /healthz: the generator's reason, or Redis's when it is why no id is held.
  Status Health(const GeneratorCore& generator) const {
    const Status can_issue = generator.CanIssue();
    if (can_issue.ok() || !redis || !generator.suspended()) return can_issue;
    const Status redis_health = redis->redis_health();
    return redis_health.ok() ? can_issue : redis_health;
  }
};

}  // namespace

int RunServer(const Config& config) {
  ConfigureLogging(config);
  // Before anything that can block: a stop during start-up exits 0 too.
  const StopSignal stop_signal;
  const std::stop_token stop = stop_signal.token();
  if (config.enable_pprof || config.enable_stats) {
    spdlog::warn("-enable-pprof and -enable-stats are Go runtime profilers; not supported here, ignored");
  }

  const bool leased = config.worker_id == 0;
  GeneratorOptions options;
  options.layout = config.js_safe_id ? IdLayout::JsSafe() : IdLayout::Default();
  options.worker_id = config.worker_id;
  options.start_suspended = leased || !config.state_file.empty();
  auto created = GeneratorCore::Create(SystemClock::Instance(), options);
  if (!created.ok()) {
    spdlog::error("{}", created.status().message());
    return 1;
  }
  std::unique_ptr<GeneratorCore> generator = std::move(created).value();
  // sd_notify: STATUS while waiting, READY=1, WATCHDOG=1, STOPPING=1 at the signal.
  systemd::ServiceNotifier notifier(*generator, stop);

  WorkerIdSource source;
  if (leased) {
    lease::RedisLeaseOptions lease_options;
    lease_options.redis.url = *redis::ParseRedisUrl(config.redis);  // validated by ParseConfig
    lease_options.redis.tls = {config.redis_tls_ca_file, config.redis_tls_cert_file,
                               config.redis_tls_key_file, config.redis_tls_skip_verify};
    lease_options.redis.replicas = {config.redis_min_replicas, config.redis_replica_timeout};
    if (config.redis_tls_skip_verify) {
      spdlog::warn("-redis-tls-skip-verify: Redis's certificate and name are not verified");
    }
    lease_options.min_worker_id = config.min_worker_id;
    lease_options.max_worker_id = config.max_worker_id;
    lease_options.lease_expiry = config.lease_expiry;
    lease_options.log = notifier.LeaseLog(LeaseLogToSpdlog());
    source.redis = std::make_unique<lease::RedisLeaseKeeper>(*generator, SystemClock::Instance(),
                                                             std::move(lease_options));
    source.redis->Start();
  } else if (!config.state_file.empty()) {
    lease::StateFileOptions file_options;
    file_options.path = config.state_file;
    file_options.worker_id = config.worker_id;
    file_options.log = notifier.LeaseLog(LeaseLogToSpdlog());
    source.state_file = std::make_unique<lease::StateFileKeeper>(*generator, SystemClock::Instance(),
                                                                 std::move(file_options));
    std::string error;
    if (!source.state_file->Start(&error, stop)) {
      if (stop.stop_requested()) {
        spdlog::info("Shutdown completed ({})", error);
        return 0;
      }
      spdlog::error("state file: {}", error);
      return 1;
    }
  }
  Stats stats;
  FrontsSetup setup;
  setup.health = [&source, &generator] { return source.Health(*generator); };
  setup.extra_metrics = [&source] { return source.Metrics(); };
  Fronts fronts(config, *generator, stats, std::move(setup));
  if (const std::string error = fronts.Start(); !error.empty()) {
    spdlog::error("{}", error);
    source.Stop();
    return 1;
  }
  if (!leased) spdlog::info("Worker ID = {}", generator->worker_id());
  notifier.ListenersUp();

  stop_signal.Wait();

  // Stop accepting everywhere and finish what is in flight against one
  // deadline, then give the worker id back (its watermark records the last
  // ID those requests got).
  fronts.Stop(config.shutdown_timeout);
  source.Stop();
  spdlog::info("Shutdown completed");
  return 0;
}

}  // namespace katsubushi
