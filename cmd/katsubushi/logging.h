// The server's logging: spdlog on stderr, as text or one JSON object a line
// (-log-format), at -log-level; and the adapter that routes the lease
// keepers' log lines into it.
//
// JSON lines are valid whatever a message holds: Redis error text and
// broadcast payloads reach the log, so a message may carry quotes, newlines,
// control bytes or bytes that are not UTF-8. The message is escaped (and
// invalid UTF-8 replaced by U+FFFD) by a formatter flag, never pasted in.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

#include "katsubushi/config.h"
#include "katsubushi/lease/lease_log.h"

namespace katsubushi {

// Installs the process-wide default logger. Call once, before any thread logs.
void ConfigureLogging(const Config& config);

// A spdlog formatter writing `{"time":...,"level":...,"logger":...,"message":...}`,
// UTC. `with_time`: Lambda's log lines carry no time (CloudWatch adds it).
std::unique_ptr<spdlog::formatter> NewJsonFormatter(bool with_time = true);

// `text` as the inside of a JSON string: `"` `\` and control characters
// escaped, each byte that is not part of valid UTF-8 replaced by \ufffd.
void AppendJsonEscaped(std::string_view text, std::string* out);

// A lease::LogFunction that logs through spdlog at the matching level.
lease::LogFunction LeaseLogToSpdlog();

}  // namespace katsubushi
