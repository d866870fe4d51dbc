#include "katsubushi/id_layout.h"

#include <gtest/gtest.h>

namespace katsubushi {
namespace {

constexpr IdLayout kDefault = IdLayout::Default();
constexpr IdLayout kJsSafe = IdLayout::JsSafe();

TEST(IdLayoutTest, DefaultBitWidths) {
  EXPECT_EQ(kDefault.time_bits(), 41);
  EXPECT_EQ(kDefault.worker_bits(), 10);
  EXPECT_EQ(kDefault.sequence_bits(), 12);
  EXPECT_EQ(kDefault.max_worker_id(), 1023u);
  EXPECT_EQ(kDefault.max_sequence(), 4095u);
  EXPECT_EQ(kDefault.ids_per_tick(), 4096u);
  EXPECT_EQ(kDefault.max_ids_per_second(), 4'096'000u);
}

TEST(IdLayoutTest, JsSafeBitWidths) {
  EXPECT_EQ(kJsSafe.time_bits(), 39);
  EXPECT_EQ(kJsSafe.worker_bits(), 6);
  EXPECT_EQ(kJsSafe.sequence_bits(), 8);
  EXPECT_EQ(kJsSafe.millis_per_tick(), 10);
  EXPECT_EQ(kJsSafe.max_worker_id(), 63u);
  EXPECT_EQ(kJsSafe.max_sequence(), 255u);
  EXPECT_EQ(kJsSafe.max_ids_per_second(), 25'600u);
  // Every ID fits in a JavaScript number exactly.
  EXPECT_EQ(kJsSafe.max_id(), (uint64_t{1} << 53) - 1);
}

// The README example of go-katsubushi, "283890203179880448", was issued by
// worker 1 at 2017-02-22T09:18:18.863Z (unix ms 1487755098863).
TEST(IdLayoutTest, DecodesKnownGoId) {
  const IdParts parts = kDefault.Decode(283890203179880448u);
  EXPECT_EQ(parts.worker_id, 1u);
  EXPECT_EQ(parts.sequence, 0u);
  EXPECT_EQ(parts.unix_millis, 1487755098863);
}

TEST(IdLayoutTest, ComposeMatchesGoBitPositions) {
  // go-katsubushi: ts << 22 | worker << 12 | seq.
  EXPECT_EQ(kDefault.Compose(1, 0, 0), uint64_t{1} << 22);
  EXPECT_EQ(kDefault.Compose(0, 1, 0), uint64_t{1} << 12);
  EXPECT_EQ(kDefault.Compose(0, 0, 1), 1u);
  EXPECT_EQ(kJsSafe.Compose(1, 0, 0), uint64_t{1} << 14);
  EXPECT_EQ(kJsSafe.Compose(0, 1, 0), uint64_t{1} << 8);
}

struct EdgeCase {
  uint64_t tick;
  uint32_t worker;
  uint32_t sequence;
};

void ExpectRoundTrip(const IdLayout& layout, const EdgeCase& c) {
  const uint64_t id = layout.Compose(c.tick, c.worker, c.sequence);
  EXPECT_EQ(layout.TickOf(id), c.tick);
  EXPECT_EQ(layout.WorkerIdOf(id), c.worker);
  EXPECT_EQ(layout.SequenceOf(id), c.sequence);
  const IdParts parts = layout.Decode(id);
  EXPECT_EQ(parts.unix_millis, layout.UnixMillisAt(c.tick));
  EXPECT_EQ(parts.worker_id, c.worker);
  EXPECT_EQ(parts.sequence, c.sequence);
  EXPECT_EQ(layout.ComposeSlot(layout.SlotOf(id), c.worker), id);
  EXPECT_LE(id, layout.max_id());
}

TEST(IdLayoutTest, DecodeComposeRoundTripsAtEdges) {
  for (const IdLayout& layout : {kDefault, kJsSafe}) {
    for (uint64_t tick : {uint64_t{0}, uint64_t{1}, layout.max_tick() - 1, layout.max_tick()}) {
      for (uint32_t worker : {0u, 1u, layout.max_worker_id()}) {
        for (uint32_t seq : {0u, 1u, layout.max_sequence()}) {
          SCOPED_TRACE(testing::Message() << "tick=" << tick << " worker=" << worker
                                          << " seq=" << seq << " js=" << (layout == kJsSafe));
          ExpectRoundTrip(layout, {tick, worker, seq});
        }
      }
    }
  }
}

TEST(IdLayoutTest, MaxTimestampNeverSetsBit63) {
  const uint64_t id = kDefault.Compose(kDefault.max_tick(), 1023, 4095);
  EXPECT_EQ(id >> 63, 0u);
  // 2^41 ms after 2015-01-01 is in September 2084.
  const int64_t last_ms = kDefault.UnixMillisAt(kDefault.max_tick());
  EXPECT_GT(last_ms / 1000, 3'618'000'000);  // 2084-08
  EXPECT_LT(last_ms / 1000, 3'621'000'000);  // 2084-10
}

TEST(IdLayoutTest, TickAtRoundsDownAndHandlesPreEpoch) {
  EXPECT_EQ(kDefault.TickAt(kEpochUnixMillis), 0);
  EXPECT_EQ(kDefault.TickAt(kEpochUnixMillis + 1), 1);
  EXPECT_EQ(kDefault.TickAt(kEpochUnixMillis - 1), -1);
  EXPECT_EQ(kJsSafe.TickAt(kEpochUnixMillis + 9), 0);
  EXPECT_EQ(kJsSafe.TickAt(kEpochUnixMillis + 10), 1);
  EXPECT_EQ(kJsSafe.TickAt(kEpochUnixMillis - 1), -1);
  EXPECT_EQ(kJsSafe.TickAt(kEpochUnixMillis - 10), -1);
  EXPECT_EQ(kJsSafe.TickAt(kEpochUnixMillis - 11), -2);
}

TEST(IdLayoutTest, MinIdAtIsGoToId) {
  // ToID(t) = ms since epoch << 22.
  const int64_t t = kEpochUnixMillis + 123'456'789;
  EXPECT_EQ(kDefault.MinIdAt(t), uint64_t{123'456'789} << 22);
  EXPECT_EQ(kDefault.MinIdAt(kEpochUnixMillis - 5), 0u);
  // Every ID issued at or after t is >= MinIdAt(t); IDs before are below.
  EXPECT_LT(kDefault.Compose(123'456'788, 1023, 4095), kDefault.MinIdAt(t));
  EXPECT_GE(kDefault.Compose(123'456'789, 0, 0), kDefault.MinIdAt(t));
  EXPECT_EQ(kJsSafe.MinIdAt(kEpochUnixMillis + 25), uint64_t{2} << 14);
}

TEST(IdLayoutTest, DecodeIgnoresBitsAboveTheLayout) {
  const uint64_t id = kJsSafe.Compose(5, 3, 7) | (uint64_t{1} << 60);
  const IdParts parts = kJsSafe.Decode(id);
  EXPECT_EQ(parts.unix_millis, kJsSafe.UnixMillisAt(5));
  EXPECT_EQ(parts.worker_id, 3u);
  EXPECT_EQ(parts.sequence, 7u);
}

}  // namespace
}  // namespace katsubushi

#include "katsubushi/time_format.h"

namespace katsubushi {
namespace {

TEST(TimeFormatTest, GoJsonTimeShape) {
  EXPECT_EQ(FormatRfc3339Millis(1487755098863), "2017-02-22T09:18:18.863Z");
  EXPECT_EQ(FormatRfc3339Millis(kEpochUnixMillis), "2015-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339Millis(kEpochUnixMillis + 30), "2015-01-01T00:00:00.03Z");
  EXPECT_EQ(FormatRfc3339Millis(kEpochUnixMillis + 100), "2015-01-01T00:00:00.1Z");
  EXPECT_EQ(FormatRfc3339Millis(-1), "1969-12-31T23:59:59.999Z");
}

}  // namespace
}  // namespace katsubushi
