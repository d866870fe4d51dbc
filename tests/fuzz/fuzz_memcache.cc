// libFuzzer target for the memcached sessions (text, meta and binary: the
// first byte picks the protocol, as on a real connection).
//
// Invariants checked, beyond "no crash":
//   * Process never consumes more than it was given, and never leaves
//     kMaxPendingBytes or more unconsumed (the server's buffer stays bounded).
//   * The replies do not depend on how the input was cut into reads: feeding
//     it whole and feeding it in fuzzer-chosen chunks give the same bytes and
//     the same close decision (IDs are deterministic on a manual clock; only
//     the time in `stats` is not, hence a retry before calling it a bug).
//   * Text commands round-trip through their tokens: the input re-rendered
//     with each run of separators as one space gives the same replies.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/clock.h"
#include "katsubushi/generator.h"
#include "katsubushi/stats.h"
#include "memcache/session.h"

namespace {

using katsubushi::memcache::kMaxPendingBytes;

constexpr int64_t kMillis = 1795305600000;

struct Outcome {
  std::string out;
  bool closed = false;
};

Outcome Feed(std::string_view input, const std::vector<size_t>& cuts) {
  katsubushi::ManualClock clock(kMillis * 1000);
  katsubushi::GeneratorOptions options;
  options.worker_id = 3;
  auto generator = std::move(katsubushi::Generator::Create(clock, options)).value();
  katsubushi::Stats stats;
  const katsubushi::memcache::ServiceContext context{*generator, stats, "1.0.0"};
  std::unique_ptr<katsubushi::memcache::Session> session;
  Outcome outcome;
  std::string buffer;
  size_t at = 0;
  for (size_t i = 0; i <= cuts.size() && !outcome.closed; ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    buffer.append(input.substr(at, end - at));
    at = end;
    if (buffer.empty()) continue;
    if (!session) session = katsubushi::memcache::NewSession(static_cast<uint8_t>(buffer[0]), context);
    const auto r = session->Process(buffer, &outcome.out);
    if (r.consumed > buffer.size()) std::abort();
    buffer.erase(0, r.consumed);
    if (buffer.size() >= kMaxPendingBytes) std::abort();
    outcome.closed = r.close;
  }
  return outcome;
}

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte seeds the cut points; the rest is the connection's input.
  const unsigned seed = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<size_t> cuts;
  for (size_t at = 0, step = 1 + seed % 7; at + step < input.size(); at += step, step = 1 + (step * 5 + seed) % 13) {
    cuts.push_back(at + step);
  }
  // `stats` replies carry the wall-clock second and the uptime, so a run that
  // straddles a second boundary may differ there; a real difference repeats.
  const bool text = !input.empty() && static_cast<uint8_t>(input[0]) != 0x80;
  const std::optional<std::string> rerendered = text ? Rerender(input) : std::nullopt;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const Outcome whole = Feed(input, {});
    const Outcome split = Feed(input, cuts);
    if (whole.out != split.out || whole.closed != split.closed) continue;
    if (rerendered) {
      const Outcome again = Feed(*rerendered, {});
      if (again.out != whole.out || again.closed != whole.closed) continue;
    }
    return 0;
  }
  std::abort();
}
