#include "run_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <thread>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/lease/redis_lease_keeper.h"
#include "katsubushi/lease/state_file_keeper.h"
#include "katsubushi/stats.h"
#include "katsubushi/version.h"
#include "grpc/core_backend.h"
#include "grpc/grpc_front.h"
#include "http/http_server.h"
#include "memcache/session.h"
#include "server/memcache_server.h"

namespace katsubushi {
namespace {

// How long SIGTERM waits for in-flight requests before forcing the exit.
// ECS sends SIGKILL 30 s after SIGTERM by default; stay well inside that.
constexpr std::chrono::seconds kShutdownGrace{5};

void ConfigureLogging(const Config& config) {
  auto logger = spdlog::stderr_logger_mt("katsubushi");
  spdlog::set_default_logger(logger);
  if (config.log_format == "json") {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","message":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
  const std::string& level = config.log_level;
  spdlog::level::level_enum l = spdlog::level::info;
  if (level == "debug") l = spdlog::level::debug;
  else if (level == "warning" || level == "warn") l = spdlog::level::warn;
  else if (level == "error") l = spdlog::level::err;
  else if (level == "fatal" || level == "panic") l = spdlog::level::critical;
  spdlog::set_level(l);
}

lease::LogFunction LeaseLogToSpdlog() {
  return [](lease::LogLevel level, std::string_view message) {
    switch (level) {
      case lease::LogLevel::kDebug: spdlog::debug("{}", message); break;
      case lease::LogLevel::kInfo: spdlog::info("{}", message); break;
      case lease::LogLevel::kWarning: spdlog::warn("{}", message); break;
      case lease::LogLevel::kError: spdlog::error("{}", message); break;
    }
  };
}

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
    std::string out;
    out += "# HELP katsubushi_lease_acquisitions_total Worker id leases acquired through Redis.\n";
    out += "# TYPE katsubushi_lease_acquisitions_total counter\n";
    out += "katsubushi_lease_acquisitions_total " + std::to_string(c.acquisitions) + "\n";
    out += "# HELP katsubushi_lease_losses_total Leases found taken by someone else at renewal.\n";
    out += "# TYPE katsubushi_lease_losses_total counter\n";
    out += "katsubushi_lease_losses_total " + std::to_string(c.losses) + "\n";
    out += "# HELP katsubushi_lease_renew_failures_total Renewals Redis did not answer.\n";
    out += "# TYPE katsubushi_lease_renew_failures_total counter\n";
    out += "katsubushi_lease_renew_failures_total " + std::to_string(c.renew_failures) + "\n";
    return out;
  }
};

}  // namespace

int RunServer(const Config& config) {
  ConfigureLogging(config);
  // Signal handlers first, before any listener: a SIGTERM during start-up
  // (an orchestrator scaling in) is then a normal shutdown, not the default
  // action's death that skips the drain and the lease release.
  boost::asio::io_context signal_io(1);
  boost::asio::signal_set signals(signal_io, SIGINT, SIGTERM);
  signals.add(SIGHUP);
  signals.add(SIGQUIT);
  signals.async_wait([](const boost::system::error_code& ec, int signal) {
    if (!ec) spdlog::info("Got signal {}", signal);
  });
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

  WorkerIdSource source;
  if (leased) {
    lease::RedisLeaseOptions lease_options;
    lease_options.url = *lease::ParseRedisUrl(config.redis);  // validated by ParseConfig
    lease_options.min_worker_id = config.min_worker_id;
    lease_options.max_worker_id = config.max_worker_id;
    lease_options.lease_expiry = config.lease_expiry;
    lease_options.log = LeaseLogToSpdlog();
    source.redis = std::make_unique<lease::RedisLeaseKeeper>(*generator, SystemClock::Instance(),
                                                             std::move(lease_options));
    source.redis->Start();
  } else if (!config.state_file.empty()) {
    lease::StateFileOptions file_options;
    file_options.path = config.state_file;
    file_options.worker_id = config.worker_id;
    file_options.log = LeaseLogToSpdlog();
    source.state_file = std::make_unique<lease::StateFileKeeper>(*generator, SystemClock::Instance(),
                                                                 std::move(file_options));
    std::string error;
    if (!source.state_file->Start(&error)) {
      spdlog::error("state file: {}", error);
      return 1;
    }
  }
  Stats stats;
  const memcache::ServiceContext context{*generator, stats, kVersion};

  server::ServerOptions server_options;
  server_options.listen_tcp = config.sock.empty() && config.port != 0;
  server_options.tcp_port = static_cast<uint16_t>(config.port);
  server_options.unix_socket_path = config.sock;
  server_options.idle_timeout = config.idle_timeout;
  server_options.threads = config.threads > 0 ? static_cast<size_t>(config.threads)
                                              : std::max(1u, std::thread::hardware_concurrency());
  server::MemcacheServer memcache_server(context, server_options);
  if (server_options.listen_tcp || !server_options.unix_socket_path.empty()) {
    if (std::error_code ec = memcache_server.Start()) {
      spdlog::error("cannot listen: {}", ec.message());
      source.Stop();
      return 1;
    }
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
      spdlog::error("cannot listen for HTTP on port {}: {}", config.http_port, ec.message());
      memcache_server.Stop(kShutdownGrace);
      source.Stop();
      return 1;
    }
    spdlog::info("Listening HTTP server at [::]:{}", http_server.port());
  }
  grpc_api::CoreBackend grpc_backend(*generator, stats, kVersion);
  grpc_api::GrpcOptions grpc_options;
  grpc_options.port = static_cast<uint16_t>(config.grpc_port);
  std::unique_ptr<grpc_api::GrpcFront> grpc_server;
  if (config.grpc_port != 0) {
    std::string error;
    grpc_server = grpc_api::LoadGrpcFront(grpc_backend, grpc_options, &error);
    std::error_code ec;
    if (!grpc_server || (ec = grpc_server->Start())) {
      if (grpc_server) error = "cannot listen on port " + std::to_string(config.grpc_port) + ": " + ec.message();
      spdlog::error("gRPC: {}", error);
      http_server.Stop(kShutdownGrace);
      memcache_server.Stop(kShutdownGrace);
      source.Stop();
      return 1;
    }
    spdlog::info("Listening gRPC server at [::]:{}", grpc_server->port());
  }
  if (!leased) spdlog::info("Worker ID = {}", generator->worker_id());

  signal_io.run();  // returns at once for a signal that came during start-up

  // Stop accepting and finish what is in flight, then give the worker id
  // back (its watermark records the last ID those requests got).
  if (grpc_server) grpc_server->Stop(kShutdownGrace);
  http_server.Stop(kShutdownGrace);
  memcache_server.Stop(kShutdownGrace);
  source.Stop();
  spdlog::info("Shutdown completed");
  return 0;
}

}  // namespace katsubushi
