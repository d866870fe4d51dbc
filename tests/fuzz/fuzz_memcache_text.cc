// libFuzzer target for the memcached text session (get, gets, stats,
// version, quit and the meta commands as a client would mix them).
//
// Invariants, beyond "no crash" and the shared framing ones (consumed bytes
// within the input, bounded pending bytes, the same replies however the input
// is cut into reads):
//   * Commands round-trip through their tokens: the input re-rendered with
//     each run of separators as one space gives the same replies.
//   * A request is completed exactly when its newline is consumed: the
//     session reports as many completed requests as there are newlines in
//     the bytes it consumed (a line discarded for its length included).
//   * Every reply is well formed: `VALUE <key> 0 <n>` followed by n digits of
//     an ID of this worker (strictly increasing), or one of the known reply
//     lines; never a partial reply.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "memcache/binary_header.h"
#include "memcache_harness.h"

namespace {

// Each line's tokens re-rendered with single spaces; nullopt when a line is
// long enough that shortening it could change a limit's verdict.
std::optional<std::string> Rerender(std::string_view input) {
  std::string out;
  size_t line = 0;
  bool in_space = false;
  for (const char c : input) {
    if (++line >= katsubushi::memcache::kMaxLineLength) return std::nullopt;
    if (c == '\n') line = 0;
    const bool space = c == ' ' || c == '\t';
    if (space && in_space) continue;
    out.push_back(space ? ' ' : c);
    in_space = space;
  }
  return out;
}

void CheckReplies(std::string_view replies) {
  static constexpr std::string_view kLinePrefixes[] = {
      "END", "ERROR", "CLIENT_ERROR ", "SERVER_ERROR ", "STAT ", "VERSION 1.0.0", "HD", "MN",
  };
  uint64_t last_id = 0;
  while (!replies.empty()) {
    const std::string_view line = katsubushi::fuzz::TakeLine(&replies);
    const bool value = line.starts_with("VALUE ");
    if (value || line.starts_with("VA ")) {
      // VALUE <key> 0 <n> / VA <n> <flags>: the data line follows either way.
      const std::string_view digits = katsubushi::fuzz::TakeLine(&replies);
      const std::string_view length = value ? line.substr(line.rfind(' ') + 1)
                                            : line.substr(3, line.find(' ', 3) - 3);
      if (length != std::to_string(digits.size())) std::abort();
      if (value && !line.ends_with(" 0 " + std::string(length))) std::abort();
      katsubushi::fuzz::CheckIssuedId(digits, &last_id);
      continue;
    }
    bool known = false;
    for (const std::string_view prefix : kLinePrefixes) known |= line.starts_with(prefix);
    if (!known) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first byte seeds the read sizes; the rest is the connection's input.
  const unsigned seed = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (static_cast<uint8_t>(input[0]) == katsubushi::memcache::kBinaryRequestMagic) return 0;  // binary target's

  const katsubushi::fuzz::Outcome whole = katsubushi::fuzz::FeedTwoWaysAndCompare(input, seed);
  CheckReplies(whole.out);
  const std::string_view taken = input.substr(0, whole.consumed);
  if (whole.completed != static_cast<size_t>(std::count(taken.begin(), taken.end(), '\n'))) std::abort();
  if (const std::optional<std::string> rerendered = Rerender(input)) {
    // `stats` carries the time (see FeedTwoWaysAndCompare): a retry feeds both
    // again, so both see the same second.
    for (int attempt = 0;; ++attempt) {
      const katsubushi::fuzz::Outcome once = attempt == 0 ? whole : katsubushi::fuzz::Feed(input, {});
      const katsubushi::fuzz::Outcome again = katsubushi::fuzz::Feed(*rerendered, {});
      if (again.out == once.out && again.closed == once.closed) break;
      if (attempt == 2) std::abort();
    }
  }
  return 0;
}
