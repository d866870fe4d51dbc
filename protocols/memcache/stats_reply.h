// The stats go-katsubushi reports, in its order, shared by the text `stats`
// command and the binary STAT opcode.
#pragma once

#include <array>
#include <charconv>
#include <string>
#include <string_view>

#include "katsubushi/stats.h"

namespace katsubushi::memcache {

inline void AppendDecimal(uint64_t value, std::string* out) {
  char buf[20];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out->append(buf, end);
}

inline void AppendDecimal(int64_t value, std::string* out) {
  char buf[21];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out->append(buf, end);
}

// Calls emit(name, value_text) for each stat in go-katsubushi's order.
template <typename Emit>
void ForEachStat(const StatsSnapshot& s, std::string_view version, Emit&& emit) {
  std::string value;
  auto number = [&](std::string_view name, auto n) {
    value.clear();
    AppendDecimal(n, &value);
    emit(name, std::string_view(value));
  };
  number("pid", s.pid);
  number("uptime", s.uptime_seconds);
  number("time", s.unix_time);
  emit(std::string_view("version"), version);
  number("curr_connections", s.curr_connections);
  number("total_connections", s.total_connections);
  number("cmd_get", s.cmd_get);
  number("get_hits", s.get_hits);
  number("get_misses", s.get_misses);
}

}  // namespace katsubushi::memcache
