// The server's logging: spdlog on stderr, as text or one JSON object a line
// (-log-format), at -log-level; and the adapter that routes the lease
// keepers' log lines into it.
#pragma once

#include "katsubushi/config.h"
#include "katsubushi/lease/lease_log.h"

namespace katsubushi {

// Installs the process-wide default logger. Call once, before any thread logs.
void ConfigureLogging(const Config& config);

// A lease::LogFunction that logs through spdlog at the matching level.
lease::LogFunction LeaseLogToSpdlog();

}  // namespace katsubushi
