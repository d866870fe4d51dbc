#include "katsubushi/go_duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace katsubushi {
namespace {

struct Unit {
  std::string_view suffix;
  int64_t nanos;
};

// Longest suffixes first where one is a prefix of another ("ms" before "m").
constexpr std::array<Unit, 8> kUnits = {{
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // U+00B5 MICRO SIGN
    {"\xCE\xBCs", 1'000},  // U+03BC GREEK SMALL LETTER MU
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
}};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<std::chrono::nanoseconds> ParseGoDuration(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return std::nullopt;

  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t total = 0;
  while (!s.empty()) {
    // Integer part.
    uint64_t whole = 0;
    bool digits = false;
    bool overflow = false;
    while (!s.empty() && IsDigit(s.front())) {
      digits = true;
      if (whole > (kMax - 9) / 10) overflow = true;
      else whole = whole * 10 + static_cast<uint64_t>(s.front() - '0');
      s.remove_prefix(1);
    }
    // Fraction: kept as fraction_digits / fraction_scale.
    uint64_t fraction = 0;
    uint64_t fraction_scale = 1;
    if (!s.empty() && s.front() == '.') {
      s.remove_prefix(1);
      while (!s.empty() && IsDigit(s.front())) {
        digits = true;
        if (fraction_scale <= kMax / 100) {  // further digits are below any unit's precision
          fraction = fraction * 10 + static_cast<uint64_t>(s.front() - '0');
          fraction_scale *= 10;
        }
        s.remove_prefix(1);
      }
    }
    if (!digits || overflow) return std::nullopt;

    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (s.starts_with(u.suffix) &&
          (unit == nullptr || u.suffix.size() > unit->suffix.size())) {
        unit = &u;
      }
    }
    if (unit == nullptr) return std::nullopt;  // missing or unknown unit
    s.remove_prefix(unit->suffix.size());

    const uint64_t per = static_cast<uint64_t>(unit->nanos);
    if (whole > kMax / per) return std::nullopt;
    uint64_t value = whole * per;
    // fraction * per may overflow for long fractions of hours; divide first
    // where needed, accepting the loss of sub-nanosecond precision.
    const long double part = static_cast<long double>(fraction) * static_cast<long double>(per) /
                             static_cast<long double>(fraction_scale);
    value += static_cast<uint64_t>(part);
    if (value > kMax || total > kMax - value) return std::nullopt;
    total += value;
  }
  const int64_t signed_total = static_cast<int64_t>(total);
  return std::chrono::nanoseconds(negative ? -signed_total : signed_total);
}

}  // namespace katsubushi
