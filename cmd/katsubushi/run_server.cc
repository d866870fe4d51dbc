#include "run_server.h"

#include <stop_token>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "grpc/core_backend.h"
#include "grpc/grpc_front.h"
#include "http/http_server.h"
#include "http/metrics.h"
#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/lease/redis_lease_keeper.h"
#include "katsubushi/lease/state_file_keeper.h"
#include "katsubushi/stats.h"
#include "katsubushi/version.h"
#include "logging.h"
#include "memcache/memcache_server.h"
#include "memcache/session.h"
#include "net/front.h"
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
    return http::RenderLeaseMetrics({c.acquisitions, c.losses, c.renew_failures});
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
    lease_options.url = *lease::ParseRedisUrl(config.redis);  // validated by ParseConfig
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
  const memcache::ServiceContext context{*generator, stats, kVersion};

  // Every front that started, in start order; they all stop together.
  std::vector<net::Front*> fronts;
  auto fail = [&](std::string_view what) {
    spdlog::error("{}", what);
    net::StopAll(fronts, config.shutdown_timeout);
    source.Stop();
    return 1;
  };

  memcache::ServerOptions server_options;
  server_options.listen_tcp = config.sock.empty() && config.port != 0;
  server_options.tcp_port = static_cast<uint16_t>(config.port);
  server_options.unix_socket_path = config.sock;
  server_options.idle_timeout = config.idle_timeout;
  server_options.threads = config.threads > 0 ? static_cast<size_t>(config.threads)
                                              : std::max(1u, std::thread::hardware_concurrency());
  memcache::MemcacheServer memcache_server(context, server_options);
  if (server_options.listen_tcp || !server_options.unix_socket_path.empty()) {
    if (std::error_code ec = memcache_server.Start()) return fail("cannot listen: " + ec.message());
    fronts.push_back(&memcache_server);
    if (server_options.listen_tcp) {
      spdlog::info("Listening server at [::]:{}", memcache_server.tcp_port());
    } else {
      spdlog::info("Listening server at {}", config.sock);
    }
  }
  const http::HttpContext http_context{*generator, stats, kVersion, {}, {},
                                       [&source] { return source.Metrics(); }};
  http::HttpOptions http_options;
  http_options.port = static_cast<uint16_t>(config.http_port);
  http_options.threads = server_options.threads;
  http::HttpServer http_server(http_context, http_options);
  if (config.http_port != 0) {
    if (std::error_code ec = http_server.Start()) {
      return fail("cannot listen for HTTP on port " + std::to_string(config.http_port) + ": " +
                  ec.message());
    }
    fronts.push_back(&http_server);
    spdlog::info("Listening HTTP server at [::]:{}", http_server.port());
  }
  grpc_api::CoreBackend grpc_backend(*generator, stats, kVersion);
  grpc_api::GrpcOptions grpc_options;
  grpc_options.port = static_cast<uint16_t>(config.grpc_port);
  grpc_options.threads = server_options.threads;
  std::unique_ptr<grpc_api::GrpcFront> grpc_server;
  if (config.grpc_port != 0) {
    std::string error;
    grpc_server = grpc_api::LoadGrpcFront(grpc_backend, grpc_options, &error);
    if (!grpc_server) return fail("gRPC: " + error);
    if (std::error_code ec = grpc_server->Start()) {
      return fail("gRPC: cannot listen on port " + std::to_string(config.grpc_port) + ": " +
                  ec.message());
    }
    fronts.push_back(grpc_server.get());
    spdlog::info("Listening gRPC server at [::]:{}", grpc_server->port());
  }
  if (!leased) spdlog::info("Worker ID = {}", generator->worker_id());
  notifier.ListenersUp();

  stop_signal.Wait();

  // Stop accepting everywhere and finish what is in flight against one
  // deadline, then give the worker id back (its watermark records the last
  // ID those requests got).
  net::StopAll(fronts, config.shutdown_timeout);
  source.Stop();
  spdlog::info("Shutdown completed");
  return 0;
}

}  // namespace katsubushi
