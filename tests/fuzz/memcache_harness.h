// What the three memcached fuzz targets share: a session fed on a manual
// clock, whole or cut into fuzzer-chosen reads, with the framing invariants
// every protocol must keep. Each target adds the invariants of its own replies.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/id_layout.h"
#include "katsubushi/stats.h"
#include "memcache/session.h"

namespace katsubushi::fuzz {

inline constexpr int64_t kFuzzMillis = 1795305600000;
inline constexpr uint32_t kFuzzWorkerId = 3;

struct Outcome {
  std::string out;
  bool closed = false;
  size_t consumed = 0;  // input bytes the session took, in total
  size_t completed = 0;  // requests the session reported finished, in total
};

// Feeds `input` to a fresh session, appending the bytes up to each cut before
// a Process call, as a socket's reads would. Aborts if the session consumes
// more than it was given or leaves kMaxPendingBytes or more unconsumed.
inline Outcome Feed(std::string_view input, const std::vector<size_t>& cuts) {
  ManualClock clock(kFuzzMillis * 1000);
  GeneratorOptions options;
  options.worker_id = kFuzzWorkerId;
  auto generator = std::move(GeneratorCore::Create(clock, options)).value();
  Stats stats;
  const memcache::ServiceContext context{*generator, stats, "1.0.0"};
  std::unique_ptr<memcache::Session> session;
  Outcome outcome;
  std::string buffer;
  size_t at = 0;
  for (size_t i = 0; i <= cuts.size() && !outcome.closed; ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    buffer.append(input.substr(at, end - at));
    at = end;
    if (buffer.empty()) continue;
    if (!session) session = memcache::NewSession(static_cast<uint8_t>(buffer[0]), context);
    const auto r = session->Process(buffer, &outcome.out);
    if (r.consumed > buffer.size()) std::abort();
    buffer.erase(0, r.consumed);
    outcome.consumed += r.consumed;
    outcome.completed += r.completed;
    if (buffer.size() >= memcache::kMaxPendingBytes) std::abort();
    outcome.closed = r.close;
  }
  return outcome;
}

// Read sizes derived from one seed byte: short and irregular, so requests
// and their headers get split at every kind of place.
inline std::vector<size_t> CutsFromSeed(unsigned seed, size_t size) {
  std::vector<size_t> cuts;
  for (size_t at = 0, step = 1 + seed % 7; at + step < size; at += step, step = 1 + (step * 5 + seed) % 13) {
    cuts.push_back(at + step);
  }
  return cuts;
}

// The replies (and the count of completed requests, which drives the idle
// timeout) must not depend on how the input was cut into reads. `stats`
// replies carry the wall-clock second and the uptime, so a run straddling a
// second boundary may differ there: a real difference repeats, hence retries.
// Returns the whole-input outcome.
inline Outcome FeedTwoWaysAndCompare(std::string_view input, unsigned seed) {
  const std::vector<size_t> cuts = CutsFromSeed(seed, input.size());
  for (int attempt = 0; attempt < 3; ++attempt) {
    Outcome whole = Feed(input, {});
    const Outcome split = Feed(input, cuts);
    if (whole.completed != split.completed) std::abort();  // no clock in this one
    if (whole.out == split.out && whole.closed == split.closed) return whole;
  }
  std::abort();
}

// Checks that `digits` is an ID this harness's generator could have issued
// after `*previous` (same worker, strictly increasing) and advances it.
inline void CheckIssuedId(std::string_view digits, uint64_t* previous) {
  uint64_t id = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) std::abort();
  if (IdLayout::Default().WorkerIdOf(id) != kFuzzWorkerId) std::abort();
  if (id <= *previous) std::abort();
  *previous = id;
}

// Takes one "\r\n"-terminated line off the front of *replies; aborts when
// there is none (a reply cut short).
inline std::string_view TakeLine(std::string_view* replies) {
  const size_t end = replies->find("\r\n");
  if (end == std::string_view::npos) std::abort();
  const std::string_view line = replies->substr(0, end);
  replies->remove_prefix(end + 2);
  return line;
}

}  // namespace katsubushi::fuzz
