// katsubushi: the ID server. main() only turns argv and the environment into a
// Config (or an exit code) and hands over to RunServer(), or inside AWS Lambda
// to RunExtension() (an extension) or RunLambda() (a custom runtime), or to
// RunHealthCheck() for -health-check.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/config.h"
#include "katsubushi/version.h"
#include "health_check.h"
#include "run_extension.h"
#include "run_lambda.h"
#include "run_server.h"

int main(int argc, char** argv) {
  // A peer that has gone away must be an EPIPE on the write, not the end of
  // the process: hiredis writes to Redis with write(2) (Asio's sends use
  // MSG_NOSIGNAL, but not every socket here is Asio's).
  std::signal(SIGPIPE, SIG_IGN);
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  const katsubushi::ConfigResult parsed = katsubushi::ParseConfig(args, katsubushi::ProcessEnv());
  // A health check asks the server beside it, wherever that runs.
  if (parsed.ok() && parsed.config.health_check) return katsubushi::RunHealthCheck(parsed.config);
  // In AWS Lambda (a custom runtime's bootstrap) the same binary serves its
  // HTTP routes from the Runtime API instead of listening.
  const char* runtime_api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  if (runtime_api != nullptr && *runtime_api != '\0' && !parsed.help &&
      !parsed.config.show_version &&
      katsubushi::IsLambdaExtension(parsed.config, argc > 0 ? argv[0] : "")) {
    return katsubushi::RunExtension(parsed.config, parsed.ok() ? std::string() : parsed.error,
                                    runtime_api, argc > 0 ? argv[0] : "katsubushi");
  }
  if (runtime_api != nullptr && *runtime_api != '\0' && !parsed.help &&
      !parsed.config.show_version) {
    if (!parsed.ok()) {
      katsubushi::ReportLambdaInitError(runtime_api, parsed.error);
      std::fprintf(stderr, "katsubushi: %s\n", parsed.error.c_str());
      return parsed.exit_code;
    }
    return katsubushi::RunLambda(parsed.config, runtime_api);
  }
  for (const std::string& warning : parsed.warnings) {
    std::fprintf(stderr, "katsubushi: warning: %s\n", warning.c_str());
  }
  if (parsed.help) {
    std::fputs(katsubushi::ConfigUsage().c_str(), stderr);
    return 0;
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "katsubushi: %s\n", parsed.error.c_str());
    if (parsed.show_usage) std::fputs(katsubushi::ConfigUsage().c_str(), stderr);
    return parsed.exit_code;
  }
  if (parsed.config.show_version) {
    std::printf("katsubushi version: %s\n", katsubushi::kVersion);
    return 0;
  }
  return katsubushi::RunServer(parsed.config);
}
