#include "run_extension.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "http/http_server.h"
#include "katsubushi/embedded/generator.h"
#include "katsubushi/stats.h"
#include "katsubushi/version.h"
#include "lambda/extension_client.h"
#include "memcache/session.h"
#include "logging.h"
#include "run_lambda.h"
#include "memcache/memcache_server.h"
#include "net/front.h"

namespace katsubushi {
namespace {

// The fronts are for the function in this environment only.
constexpr char kLoopback[] = "127.0.0.1";
// Of the SHUTDOWN budget (Lambda allows about 2 s), the most spent waiting
// for in-flight requests; the rest is for giving the worker id back.
constexpr std::chrono::milliseconds kMaxDrain{500};
// Kept free before the deadline for the release round trip and the exit.
constexpr std::chrono::milliseconds kReleaseReserve{700};

std::string_view BaseName(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

int64_t NowUnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool IsLambdaExtension(const Config& config, std::string_view argv0) {
  if (config.lambda_extension) return true;
  // Read directly too: when another setting is invalid, ParseConfig may have
  // stopped before this one, and the error must still go to the Extensions
  // API as an init error rather than to the Runtime API.
  if (const char* env = std::getenv("KATSUBUSHI_LAMBDA_EXTENSION");
      env != nullptr && (std::string_view(env) == "1" || std::string_view(env) == "true")) {
    return true;
  }
  const size_t slash = argv0.rfind('/');
  return slash != std::string_view::npos && BaseName(argv0.substr(0, slash)) == "extensions";
}

int RunExtension(const Config& config, const std::string& parse_error,
                 const std::string& runtime_api, std::string_view argv0) {
  // stderr goes to CloudWatch. The fronts log from their threads.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("katsubushi"));
  spdlog::set_formatter(NewJsonFormatter(/*with_time=*/false));

  lambda::ExtensionClient client(runtime_api);
  std::string error;
  // Lambda requires the name to be the executable's file name.
  if (!client.Register(BaseName(argv0), &error)) {
    spdlog::error("cannot register as a Lambda extension: {}", error);
    return 1;
  }
  auto fail_init = [&](std::string_view reason, const std::string& message) {
    spdlog::error("{}", message);
    std::string report_error;
    if (!client.ReportInitError(reason, message, &report_error)) spdlog::error("{}", report_error);
    return 1;
  };
  if (!parse_error.empty()) return fail_init("Config", parse_error);
  if (config.worker_id != 0) {
    return fail_init("StaticWorkerId",
                     "a static -worker-id is refused in Lambda extension mode: every environment "
                     "of the function would issue IDs under it; lease one with -redis");
  }
  if (config.grpc_port != 0) spdlog::warn("-grpc-port is not served in Lambda extension mode");

  auto opened = Generator::Open(LambdaGeneratorConfig(config));  // no network I/O
  if (!opened.ok()) return fail_init("Config", std::string(opened.status().message()));
  Generator& generator = *opened.value();

  Stats stats;
  const size_t threads = config.threads > 0 ? static_cast<size_t>(config.threads)
                                            : std::max(1u, std::thread::hardware_concurrency());
  const memcache::ServiceContext memcache_context{generator.core(), stats, kVersion};
  memcache::ServerOptions server_options;
  server_options.listen_tcp = config.sock.empty() && config.port != 0;
  server_options.tcp_address = kLoopback;
  server_options.tcp_port = static_cast<uint16_t>(config.port);
  server_options.unix_socket_path = config.sock;
  server_options.idle_timeout = config.idle_timeout;
  server_options.threads = threads;
  memcache::MemcacheServer memcache_server(memcache_context, server_options);
  // Every front that started; they all stop together, to one deadline.
  std::vector<net::Front*> fronts;
  const bool memcache_on = server_options.listen_tcp || !server_options.unix_socket_path.empty();
  if (memcache_on) {
    if (std::error_code ec = memcache_server.Start()) {
      return fail_init("Listen", "cannot listen for memcached on " + std::string(kLoopback) + ":" +
                                     std::to_string(config.port) + ": " + ec.message());
    }
    fronts.push_back(&memcache_server);
  }
  // /healthz is 503 with the reason while no worker id can be had (Redis
  // down, or every id of the range taken by other environments).
  const http::HttpContext http_context{generator.core(), stats, kVersion,
                                       [&generator]() -> Status {
                                         if (Status s = generator.EnsureWorkerId(); !s.ok()) return s;
                                         return generator.core().CanIssue();
                                       },
                                       {}, {}};
  http::HttpOptions http_options;
  http_options.address = kLoopback;
  http_options.port = static_cast<uint16_t>(config.http_port);
  http_options.threads = threads;
  http_options.idle_timeout = config.idle_timeout;
  http::HttpServer http_server(http_context, http_options);
  if (config.http_port != 0) {
    if (std::error_code ec = http_server.Start()) {
      net::StopAll(fronts, std::chrono::milliseconds(0));
      return fail_init("Listen", "cannot listen for HTTP on " + std::string(kLoopback) + ":" +
                                     std::to_string(config.http_port) + ": " + ec.message());
    }
    fronts.push_back(&http_server);
  }
  spdlog::info("katsubushi {} extension ready: memcached {}:{}, HTTP {}:{}", kVersion, kLoopback,
               memcache_on ? memcache_server.tcp_port() : 0, kLoopback,
               config.http_port != 0 ? http_server.port() : 0);

  for (;;) {
    lambda::ExtensionEvent event;
    if (!client.Next(&event, &error)) {
      spdlog::error("{}", error);
      std::string report_error;
      if (!client.ReportExitError("EventLoop", error, &report_error)) spdlog::error("{}", report_error);
      net::StopAll(fronts, std::chrono::milliseconds(0));
      generator.Close();
      return 1;
    }
    if (event.type == lambda::ExtensionEvent::Type::kInvoke) {
      // The function runs now: have its worker id confirmed (or acquired)
      // before its first request, not on it. Errors are answered by the
      // fronts themselves, in each protocol's terms.
      // One round trip either way: a held id is confirmed, a missing one
      // acquired (which confirms it too).
      const Status s = generator.core().suspended() ? generator.EnsureWorkerId()
                                                    : generator.InvocationBegin();
      if (!s.ok()) spdlog::warn("worker id lease: {}", s.message());
      continue;
    }
    // SHUTDOWN: drain, give the id back, exit before the deadline.
    const auto budget = std::chrono::milliseconds(
        event.deadline_ms > 0 ? event.deadline_ms - NowUnixMillis() : 2000);
    const auto drain = std::clamp(budget - kReleaseReserve, std::chrono::milliseconds(0), kMaxDrain);
    spdlog::info("shutdown ({}): draining for up to {} ms", event.shutdown_reason, drain.count());
    net::StopAll(fronts, drain);
    const Status released = generator.Close();
    if (!released.ok()) spdlog::warn("releasing the worker id: {}", released.message());
    spdlog::info("shutdown completed");
    return 0;
  }
}

}  // namespace katsubushi
