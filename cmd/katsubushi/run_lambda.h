// RunLambda: the server's HTTP routes served from AWS Lambda events instead of
// a listening socket (the "same binary" pattern), when AWS_LAMBDA_RUNTIME_API
// is set. The worker id comes from a Redis lease kept from the issue path;
// a static -worker-id is refused, since every environment would share it.
// SIGTERM (sent by Lambda at shutdown) releases the worker id and exits 0.
#pragma once

#include <string>

#include "katsubushi/config.h"

namespace katsubushi {

// Reports `message` to the Runtime API as an init error (when it can).
void ReportLambdaInitError(const std::string& runtime_api, const std::string& message);

// Runs the event loop until the Runtime API goes away; returns the exit code.
int RunLambda(const Config& config, const std::string& runtime_api);

}  // namespace katsubushi
