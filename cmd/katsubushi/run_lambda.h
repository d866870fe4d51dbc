// RunLambda: the server's HTTP routes served from AWS Lambda events instead of
// a listening socket (the "same binary" pattern), when AWS_LAMBDA_RUNTIME_API
// is set. The worker id comes from a Redis lease kept from the issue path;
// a static -worker-id is refused, since every environment would share it.
// SIGTERM (sent by Lambda at shutdown) releases the worker id and exits 0.
#pragma once

#include <string>

#include "katsubushi/config.h"
#include "katsubushi/embedded/generator.h"

namespace katsubushi {

// Reports `message` to the Runtime API as an init error (when it can).
void ReportLambdaInitError(const std::string& runtime_api, const std::string& message);

// Runs the event loop until the Runtime API goes away; returns the exit code.
int RunLambda(const Config& config, const std::string& runtime_api);

// The embedded generator's configuration in both Lambda modes (custom runtime
// and extension): a worker id leased from -redis, Lambda's default TTL (60 s)
// unless -lease-expiry is given, whatever its value; lease logs to spdlog.
GeneratorConfig LambdaGeneratorConfig(const Config& config);

}  // namespace katsubushi
