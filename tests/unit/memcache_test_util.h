// Drives a memcache::Session the way the socket loop does, with the input cut
// into chunks, so every test can be replayed fed whole, split in two at every
// point, and one byte at a time (seastar/mcrouter parser-test style).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"
#include "memcache/session.h"

namespace katsubushi::memcache::testing {

// 2026-11-22T00:00:00Z.
inline constexpr int64_t kTestMillis = 1795305600000;
inline constexpr uint32_t kTestWorker = 9;
inline constexpr std::string_view kTestVersion = "9.9.9";

// A fresh generator on a fixed manual clock, so every replay issues the same IDs.
struct Service {
  ManualClock clock{kTestMillis * 1000};
  std::unique_ptr<GeneratorCore> generator;
  Stats stats;
  ServiceContext context;

  Service()
      : generator(std::move(GeneratorCore::Create(clock, MakeOptions())).value()),
        context{*generator, stats, kTestVersion} {}

  static GeneratorOptions MakeOptions() {
    GeneratorOptions o;
    o.worker_id = kTestWorker;
    return o;
  }
  // The n-th ID (0-based) this service issues while the clock stands still.
  static std::string Id(uint32_t n) {
    return std::to_string(IdLayout::Default().Compose(
        static_cast<uint64_t>(IdLayout::Default().TickAt(kTestMillis)), kTestWorker, n));
  }
};

struct Transcript {
  std::string out;
  bool closed = false;
  size_t max_pending = 0;
  size_t pending = 0;
  std::vector<size_t> completed;  // ProcessResult::completed of each Process call
  size_t total_completed() const {
    size_t n = 0;
    for (size_t c : completed) n += c;
    return n;
  }
};

inline Transcript Feed(Service& service, const std::vector<std::string>& chunks) {
  Transcript t;
  std::unique_ptr<Session> session;
  std::string buffer;
  for (const std::string& chunk : chunks) {
    if (t.closed) break;
    buffer += chunk;
    if (buffer.empty()) continue;
    if (!session) session = NewSession(static_cast<uint8_t>(buffer[0]), service.context);
    const ProcessResult r = session->Process(buffer, &t.out);
    EXPECT_LE(r.consumed, buffer.size());
    buffer.erase(0, r.consumed);
    EXPECT_LT(buffer.size(), kMaxPendingBytes);
    t.max_pending = std::max(t.max_pending, buffer.size());
    t.completed.push_back(r.completed);
    t.closed = r.close;
  }
  t.pending = buffer.size();
  return t;
}

// Every way of cutting `input` this helper tries.
inline std::vector<std::vector<std::string>> Splits(const std::string& input) {
  std::vector<std::vector<std::string>> all;
  all.push_back({input});
  for (size_t cut = 1; cut < input.size(); ++cut) {
    all.push_back({input.substr(0, cut), input.substr(cut)});
  }
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  all.push_back(bytes);
  return all;
}

// Replays `input` in every split against a fresh service each time and checks
// that the replies, and whether the connection closed, never depend on it.
inline Transcript ExpectSameForEverySplit(const std::string& input,
                                          const std::function<void(Service&)>& prepare = {}) {
  Service reference_service;
  if (prepare) prepare(reference_service);
  const Transcript reference = Feed(reference_service, {input});
  for (const auto& chunks : Splits(input)) {
    Service service;
    if (prepare) prepare(service);
    const Transcript t = Feed(service, chunks);
    EXPECT_EQ(t.out, reference.out) << "split into " << chunks.size() << " chunks, first of "
                                    << chunks[0].size() << " bytes";
    EXPECT_EQ(t.closed, reference.closed);
    EXPECT_EQ(t.total_completed(), reference.total_completed());
  }
  return reference;
}

}  // namespace katsubushi::memcache::testing
