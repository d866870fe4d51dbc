// ParseGoDuration: Go's time.ParseDuration syntax, so -idle-timeout takes the
// same values as go-katsubushi ("600s", "10m", "1m30s", "1.5h", "500ms", "0").
//
// Pure function; thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace katsubushi {

// A sequence of decimal numbers, each with an optional fraction and a unit
// suffix (ns, us, µs, ms, s, m, h), with an optional leading sign; "0" alone
// is allowed without a unit. Returns nullopt for anything else, and for
// durations that overflow 64-bit nanoseconds. Sub-nanosecond fractions are
// truncated, as in Go.
std::optional<std::chrono::nanoseconds> ParseGoDuration(std::string_view text);

}  // namespace katsubushi
