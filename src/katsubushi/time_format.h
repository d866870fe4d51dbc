// Time as text, the way go-katsubushi prints it.
#pragma once

#include <cstdint>
#include <string>

namespace katsubushi {

// RFC 3339 in UTC as Go's time.Time marshals to JSON: seconds, then a
// fraction only if non-zero with trailing zeros dropped, then "Z"
// ("2017-02-22T09:18:18.863Z", "2015-01-01T00:00:00Z").
std::string FormatRfc3339Millis(int64_t unix_millis);

}  // namespace katsubushi
