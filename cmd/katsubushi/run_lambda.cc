#include "run_lambda.h"

#include <signal.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "http/router.h"
#include "katsubushi/embedded/generator.h"
#include "katsubushi/stats.h"
#include "katsubushi/version.h"
#include "lambda/event.h"
#include "lambda/runtime_client.h"
#include "logging.h"

namespace katsubushi {
namespace {

namespace beast_http = boost::beast::http;

// Triggered by SIGTERM/SIGINT. Lambda sends SIGTERM to the runtime when it
// shuts an environment down (when extensions are registered): the wait for
// the next event ends and the loop gives the worker id back instead of
// leaving it to expire.
lambda::ApiInterrupter g_stop;

void OnStopSignal(int) { g_stop.Interrupt(); }

void InstallStopHandler() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

http::Request ToRequest(const lambda::HttpEvent& event) {
  http::Request request;
  request.method(beast_http::string_to_verb(event.method));
  request.method_string(event.method);
  request.target(event.Target());
  request.version(11);
  for (const auto& [name, value] : event.headers) request.insert(name, value);
  request.body() = event.body;
  return request;
}

lambda::HttpReply ToReply(const http::Response& response) {
  lambda::HttpReply reply;
  reply.status = static_cast<int>(response.result_int());
  reply.reason = std::string(beast_http::obsolete_reason(response.result()));
  for (const auto& field : response) {
    reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  reply.body = response.body();
  return reply;
}

}  // namespace

void ReportLambdaInitError(const std::string& runtime_api, const std::string& message) {
  std::string error;
  lambda::RuntimeClient client(runtime_api);
  if (!client.ReportInitError("Runtime.InitError", message, &error)) {
    spdlog::error("{}", error);
  }
}

GeneratorConfig LambdaGeneratorConfig(const Config& config) {
  GeneratorConfig options;
  options.js_safe_id = config.js_safe_id;
  options.redis_url = config.redis;
  options.redis_tls_ca_file = config.redis_tls_ca_file;
  options.redis_tls_cert_file = config.redis_tls_cert_file;
  options.redis_tls_key_file = config.redis_tls_key_file;
  options.redis_tls_skip_verify = config.redis_tls_skip_verify;
  options.redis_min_replicas = config.redis_min_replicas;
  options.redis_replica_timeout = config.redis_replica_timeout;
  options.min_worker_id = config.min_worker_id;
  options.max_worker_id = config.max_worker_id;
  // Lambda's default TTL is GeneratorConfig's (60 s); an explicit
  // -lease-expiry wins, whatever its value.
  if (config.lease_expiry_given) options.lease_ttl = config.lease_expiry;
  options.log = LeaseLogToSpdlog();
  return options;
}

int RunLambda(const Config& config, const std::string& runtime_api) {
  // stderr goes to CloudWatch; no thread, no signal handler.
  spdlog::set_default_logger(spdlog::stderr_logger_st("katsubushi"));
  spdlog::set_formatter(NewJsonFormatter(/*with_time=*/false));

  auto fail_init = [&](const std::string& message) {
    spdlog::error("{}", message);
    ReportLambdaInitError(runtime_api, message);
    return 1;
  };
  if (config.worker_id != 0) {
    return fail_init(
        "a static -worker-id is refused in Lambda mode: every environment of the function would "
        "issue IDs under it; lease one with -redis");
  }
  auto opened = Generator::Open(LambdaGeneratorConfig(config));
  if (!opened.ok()) return fail_init(std::string(opened.status().message()));
  Generator& generator = *opened.value();

  Stats stats;
  const http::HttpContext context{generator.core(), stats, kVersion,
                                  [&generator]() -> Status {
                                    if (Status s = generator.EnsureWorkerId(); !s.ok()) return s;
                                    return generator.core().CanIssue();
                                  },
                                  {}, {}};
  InstallStopHandler();
  auto stop = [&generator] {
    const Status released = generator.Close();
    if (!released.ok()) spdlog::warn("releasing the worker id: {}", released.message());
    spdlog::info("stopped by signal; worker id released");
    return 0;
  };
  lambda::RuntimeClient client(runtime_api);
  for (;;) {
    if (g_stop.interrupted()) return stop();
    lambda::RuntimeClient::Invocation invocation;
    std::string error;
    if (!client.Next(&invocation, &error, &g_stop)) {
      if (g_stop.interrupted()) return stop();
      spdlog::error("{}", error);
      generator.Close();
      return 1;
    }
    std::optional<lambda::HttpEvent> event = lambda::DecodeHttpEvent(invocation.body, &error);
    if (!event) {
      spdlog::warn("event {}: {}", invocation.request_id, error);
      if (!client.ReportError(invocation.request_id, "InvalidEvent", error, &error)) {
        spdlog::error("{}", error);
      }
      continue;
    }
    // The event's first ID is issued under a lease confirmed now (an error
    // here is answered by the route itself, as 503).
    if (Status s = generator.InvocationBegin(); !s.ok()) {
      spdlog::warn("worker id lease: {}", s.message());
    }
    const http::Response response = http::Route(ToRequest(*event), context);
    if (!client.Respond(invocation.request_id, lambda::EncodeHttpReply(*event, ToReply(response)),
                        &error)) {
      spdlog::error("{}", error);
    }
  }
}

}  // namespace katsubushi
