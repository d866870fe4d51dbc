// RunExtension: the server as an AWS Lambda external extension. It registers
// with the Extensions API for INVOKE and SHUTDOWN, serves its memcached and
// HTTP fronts on 127.0.0.1 only (for the function in the same execution
// environment, as next to an ECS sidecar), and takes its worker id from a
// Redis lease kept the thread-free way (SyncRedisLease, as the embedded
// library): nothing runs while the environment is frozen, an ID issued after
// a thaw re-validates first, and each INVOKE confirms the lease at once.
// SHUTDOWN drains the fronts, gives the worker id back (compare-and-delete,
// with its watermark) and exits 0 before the event's deadline.
#pragma once

#include <string>
#include <string_view>

#include "katsubushi/config.h"

namespace katsubushi {

// Whether this start is an extension: -lambda-extension /
// KATSUBUSHI_LAMBDA_EXTENSION, or an executable started from a directory
// named "extensions" (Lambda runs /opt/extensions/* without arguments; a
// layer needs no shell script around the binary then).
bool IsLambdaExtension(const Config& config, std::string_view argv0);

// `parse_error`, when not empty, is reported as the init error (after
// registering, as the API requires). Returns the exit code.
int RunExtension(const Config& config, const std::string& parse_error,
                 const std::string& runtime_api, std::string_view argv0);

}  // namespace katsubushi
