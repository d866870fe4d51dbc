#include "katsubushi/time_format.h"

#include <cstdio>
#include <ctime>

namespace katsubushi {

std::string FormatRfc3339Millis(int64_t unix_millis) {
  // Floor division, so times before 1970 still print their own second.
  int64_t seconds = unix_millis / 1000;
  int millis = static_cast<int>(unix_millis % 1000);
  if (millis < 0) {
    millis += 1000;
    --seconds;
  }
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (millis != 0) {
    n += static_cast<size_t>(std::snprintf(buf + n, sizeof buf - n, ".%03d", millis));
    while (buf[n - 1] == '0') --n;
  }
  buf[n++] = 'Z';
  return std::string(buf, n);
}

}  // namespace katsubushi
