#include "katsubushi/generator_core.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace katsubushi {
namespace {

using std::chrono::milliseconds;

constexpr IdLayout kDefault = IdLayout::Default();
constexpr IdLayout kJsSafe = IdLayout::JsSafe();
// 2026-11-22T00:00:00Z, a plain time well inside the layout.
constexpr int64_t kStartMillis = 1795305600000;

std::unique_ptr<GeneratorCore> MakeGenerator(Clock& clock, uint32_t worker_id = 7,
                                         IdLayout layout = kDefault,
                                         milliseconds max_rollback = milliseconds(5)) {
  GeneratorOptions options;
  options.layout = layout;
  options.worker_id = worker_id;
  options.max_clock_rollback = max_rollback;
  auto created = GeneratorCore::Create(clock, options);
  EXPECT_TRUE(created.ok()) << created.status().message();
  return std::move(created).value();
}

uint64_t NextOrDie(GeneratorCore& gen) {
  Result<uint64_t> id = gen.Next();
  EXPECT_TRUE(id.ok()) << id.status().message();
  return id.ok() ? *id : 0;
}

TEST(GeneratorTest, FirstIdCarriesClockTimeWorkerAndSequenceZero) {
  ManualClock clock(kStartMillis * 1000 + 250);
  auto gen = MakeGenerator(clock, 1023);
  const IdParts parts = kDefault.Decode(NextOrDie(*gen));
  EXPECT_EQ(parts.unix_millis, kStartMillis);
  EXPECT_EQ(parts.worker_id, 1023u);
  EXPECT_EQ(parts.sequence, 0u);
}

TEST(GeneratorTest, RejectsWorkerIdOutsideTheLayout) {
  ManualClock clock(kStartMillis * 1000);
  GeneratorOptions options;
  options.worker_id = 1024;
  EXPECT_EQ(GeneratorCore::Create(clock, options).status().code(), StatusCode::kInvalidArgument);
  options.layout = kJsSafe;
  options.worker_id = 64;
  EXPECT_EQ(GeneratorCore::Create(clock, options).status().code(), StatusCode::kInvalidArgument);
  options.worker_id = 63;
  EXPECT_TRUE(GeneratorCore::Create(clock, options).ok());
}

TEST(GeneratorTest, SequenceOverflowRollsToTheNextMillisecond) {
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(true);
  auto gen = MakeGenerator(clock);
  uint64_t previous = 0;
  for (uint32_t i = 0; i < 4096; ++i) {
    const uint64_t id = NextOrDie(*gen);
    EXPECT_EQ(kDefault.SequenceOf(id), i);
    EXPECT_EQ(kDefault.Decode(id).unix_millis, kStartMillis);
    EXPECT_GT(id, previous);
    previous = id;
  }
  EXPECT_EQ(clock.wait_count(), 0u);
  // The 4097th ID needs the next ms: the generator waits for the clock (the
  // manual clock jumps when waited on) and starts again at sequence 0.
  const uint64_t id = NextOrDie(*gen);
  EXPECT_GT(id, previous);
  EXPECT_EQ(kDefault.Decode(id).unix_millis, kStartMillis + 1);
  EXPECT_EQ(kDefault.SequenceOf(id), 0u);
  EXPECT_GE(clock.wait_count(), 1u);
  EXPECT_GE(gen->counters().waits, 1u);
  EXPECT_EQ(clock.NowUnixMicros(), (kStartMillis + 1) * 1000);
}

TEST(GeneratorTest, OverflowNeverIssuesBeforeTheClockReachesTheNextTick) {
  // With auto-advance off nothing moves the clock but this test, so the
  // generator must keep waiting rather than run ahead.
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(false);
  auto gen = MakeGenerator(clock);
  for (int i = 0; i < 4096; ++i) NextOrDie(*gen);
  std::atomic<uint64_t> id{0};
  std::thread waiter([&] { id = NextOrDie(*gen); });
  while (clock.wait_count() < 100) std::this_thread::yield();
  EXPECT_EQ(id.load(), 0u);  // still waiting
  clock.AdvanceMillis(1);
  waiter.join();
  EXPECT_EQ(kDefault.Decode(id.load()).unix_millis, kStartMillis + 1);
}

TEST(GeneratorTest, SmallRollbackIsAbsorbedWithoutDuplicates) {
  ManualClock clock(kStartMillis * 1000);
  auto gen = MakeGenerator(clock);
  const uint64_t before = NextOrDie(*gen);
  clock.AdvanceMillis(-1);
  const uint64_t during = NextOrDie(*gen);
  EXPECT_GT(during, before);
  // It continued on the tick it was on rather than the clock's.
  EXPECT_EQ(kDefault.Decode(during).unix_millis, kStartMillis);
  EXPECT_EQ(kDefault.SequenceOf(during), 1u);
  EXPECT_EQ(gen->counters().rollbacks_absorbed, 1u);
  clock.AdvanceMillis(2);
  const uint64_t after = NextOrDie(*gen);
  EXPECT_GT(after, during);
  EXPECT_EQ(kDefault.Decode(after).unix_millis, kStartMillis + 1);
}

TEST(GeneratorTest, AbsorbedRollbackWaitsWhenTheTickIsUsedUp) {
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(true);
  auto gen = MakeGenerator(clock);
  NextOrDie(*gen);
  clock.AdvanceMillis(-3);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4096; ++i) ids.push_back(NextOrDie(*gen));
  // 4095 more fit in the old tick; the last one needed the tick after it, so
  // the generator waited for the clock to get there.
  EXPECT_EQ(kDefault.Decode(ids[4094]).unix_millis, kStartMillis);
  EXPECT_EQ(kDefault.Decode(ids[4095]).unix_millis, kStartMillis + 1);
  EXPECT_GE(clock.NowUnixMicros(), (kStartMillis + 1) * 1000);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

TEST(GeneratorTest, RollbackBeyondTheBoundErrorsAndRecovers) {
  ManualClock clock(kStartMillis * 1000);
  auto gen = MakeGenerator(clock, 7, kDefault, milliseconds(5));
  const uint64_t before = NextOrDie(*gen);

  clock.AdvanceMillis(-6);
  Result<uint64_t> refused = gen->Next();
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.status(), kClockMovedBackwards);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  uint64_t batch[3] = {};
  EXPECT_EQ(gen->NextN(batch), kClockMovedBackwards);
  EXPECT_EQ(gen->counters().rollback_errors, 2u);

  // Within the bound again: absorbed, still on the old tick.
  clock.AdvanceMillis(1);
  const uint64_t absorbed = NextOrDie(*gen);
  EXPECT_GT(absorbed, before);
  EXPECT_EQ(kDefault.Decode(absorbed).unix_millis, kStartMillis);

  // Caught up: normal IDs at the clock's time.
  clock.SetMillis(kStartMillis + 10);
  const uint64_t recovered = NextOrDie(*gen);
  EXPECT_GT(recovered, absorbed);
  EXPECT_EQ(kDefault.Decode(recovered).unix_millis, kStartMillis + 10);
}

TEST(GeneratorTest, ZeroRollbackBoundRefusesAnyStepBack) {
  ManualClock clock(kStartMillis * 1000);
  auto gen = MakeGenerator(clock, 7, kDefault, milliseconds(0));
  NextOrDie(*gen);
  clock.AdvanceMillis(-1);
  EXPECT_EQ(gen->Next().status(), kClockMovedBackwards);
}

TEST(GeneratorTest, NextNReservesConsecutiveIdsAcrossAMillisecondBoundary) {
  ManualClock clock(kStartMillis * 1000);
  auto gen = MakeGenerator(clock, 5);
  for (int i = 0; i < 4000; ++i) NextOrDie(*gen);
  std::vector<uint64_t> ids(200);
  ASSERT_TRUE(gen->NextN(ids).ok());
  // 96 IDs left in this ms (sequences 4000..4095), the rest spill into the next.
  for (size_t i = 0; i < ids.size(); ++i) {
    const IdParts parts = kDefault.Decode(ids[i]);
    EXPECT_EQ(parts.worker_id, 5u);
    if (i < 96) {
      EXPECT_EQ(parts.unix_millis, kStartMillis) << i;
      EXPECT_EQ(parts.sequence, 4000 + i) << i;
    } else {
      EXPECT_EQ(parts.unix_millis, kStartMillis + 1) << i;
      EXPECT_EQ(parts.sequence, i - 96) << i;
    }
    if (i > 0) {
      EXPECT_GT(ids[i], ids[i - 1]);
    }
  }
  // The batch ran one tick ahead; the next single ID continues after it.
  const uint64_t next = NextOrDie(*gen);
  EXPECT_GT(next, ids.back());
  EXPECT_EQ(kDefault.SequenceOf(next), 104u);
}

TEST(GeneratorTest, NextNDoesNotRunAheadOfTheClockRepeatedly) {
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(true);
  auto gen = MakeGenerator(clock);
  std::vector<uint64_t> ids(1000);
  // 100 batches of 1000 = 100,000 IDs need at least 24 ms of clock time.
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(gen->NextN(ids).ok());
    EXPECT_GT(ids.front(), last);
    last = ids.back();
    // Never more than one tick ahead of the clock.
    EXPECT_LE(kDefault.Decode(last).unix_millis, clock.NowUnixMicros() / 1000 + 1);
  }
  EXPECT_GE(clock.NowUnixMicros() / 1000 - kStartMillis, 100'000 / 4096 - 1);
}

TEST(GeneratorTest, NextNRejectsBadCounts) {
  ManualClock clock(kStartMillis * 1000);
  auto gen = MakeGenerator(clock);
  std::vector<uint64_t> too_many(GeneratorCore::kMaxIdsPerCall + 1);
  EXPECT_EQ(gen->NextN(too_many), kBadIdCount);
  EXPECT_EQ(gen->NextN(std::span<uint64_t>()), kBadIdCount);
  std::vector<uint64_t> max(GeneratorCore::kMaxIdsPerCall);
  EXPECT_TRUE(gen->NextN(max).ok());
}

TEST(GeneratorTest, JsSafeBatchSpansSeveralTicks) {
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(true);
  auto gen = MakeGenerator(clock, 63, kJsSafe);
  std::vector<uint64_t> ids(1000);
  ASSERT_TRUE(gen->NextN(ids).ok());
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
  for (uint64_t id : ids) {
    EXPECT_LE(id, (uint64_t{1} << 53) - 1);
    EXPECT_EQ(kJsSafe.WorkerIdOf(id), 63u);
  }
  // 1000 IDs at 256 per 10 ms tick span 4 ticks.
  EXPECT_EQ(kJsSafe.Decode(ids.back()).unix_millis - kJsSafe.Decode(ids.front()).unix_millis, 30);
}

TEST(GeneratorTest, ClockBeforeEpochAndPastTheLayoutAreErrors) {
  ManualClock clock((kEpochUnixMillis - 1) * 1000);
  auto gen = MakeGenerator(clock);
  EXPECT_EQ(gen->Next().status(), kClockBeforeEpoch);
  clock.SetMillis(kDefault.UnixMillisAt(kDefault.max_tick()));
  const uint64_t last_possible_tick = NextOrDie(*gen);
  EXPECT_EQ(kDefault.TickOf(last_possible_tick), kDefault.max_tick());
  clock.SetMillis(kDefault.UnixMillisAt(kDefault.max_tick()) + 1);
  EXPECT_EQ(gen->Next().status(), kTimeOutOfRange);
}

TEST(GeneratorTest, LastTickSequenceExhaustionIsOutOfRangeNotAWrap) {
  ManualClock clock(kDefault.UnixMillisAt(kDefault.max_tick()) * 1000);
  auto gen = MakeGenerator(clock, 1);
  std::vector<uint64_t> all(4096);
  ASSERT_TRUE(gen->NextN(all).ok());
  EXPECT_EQ(all.back() >> 63, 0u);
  EXPECT_EQ(gen->Next().status(), kTimeOutOfRange);
}

TEST(GeneratorTest, AdvancePastWaitsForTheWatermark) {
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(true);
  auto gen = MakeGenerator(clock);
  // A previous life issued IDs up to kStartMillis + 50 (the clock was stepped
  // back while we were down).
  ASSERT_TRUE(gen->AdvancePast(kStartMillis + 50, milliseconds(1000)).ok());
  EXPECT_GT(clock.NowUnixMicros(), (kStartMillis + 50) * 1000);
  EXPECT_GT(kDefault.Decode(NextOrDie(*gen)).unix_millis, kStartMillis + 50);
}

TEST(GeneratorTest, AdvancePastTimeoutStillKeepsTheFloor) {
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(false);
  auto gen = MakeGenerator(clock);
  // The clock never moves, so the wait times out...
  std::thread mover([&] {
    while (clock.wait_count() < 10) std::this_thread::yield();
    clock.AdvanceMillis(2);  // past the 1 ms deadline, short of the watermark
  });
  EXPECT_EQ(gen->AdvancePast(kStartMillis + 60'000, milliseconds(1)), kWatermarkNotPassed);
  mover.join();
  // ...and the generator still refuses anything at or below the watermark,
  // saying why (not a clock rollback: nothing was issued past the floor).
  EXPECT_EQ(gen->Next().status(), kBehindWatermark);
  EXPECT_EQ(gen->CanIssue(), kBehindWatermark);
  EXPECT_EQ(gen->counters().rollback_errors, 0u);
  clock.SetMillis(kStartMillis + 60'001);
  EXPECT_GT(kDefault.Decode(NextOrDie(*gen)).unix_millis, kStartMillis + 60'000);
}

TEST(GeneratorTest, CanIssueReportsWithoutIssuing) {
  ManualClock clock(kStartMillis * 1000);
  auto gen = MakeGenerator(clock);
  EXPECT_TRUE(gen->CanIssue().ok());
  const uint64_t first = NextOrDie(*gen);
  clock.AdvanceMillis(-6);
  EXPECT_EQ(gen->CanIssue(), kClockMovedBackwards);
  clock.AdvanceMillis(2);  // 4 ms behind: within the bound
  EXPECT_TRUE(gen->CanIssue().ok());
  EXPECT_EQ(kDefault.SequenceOf(NextOrDie(*gen)), kDefault.SequenceOf(first) + 1);
  clock.SetMillis(kEpochUnixMillis - 1);
  EXPECT_EQ(gen->CanIssue(), kClockBeforeEpoch);
}

TEST(GeneratorTest, LastIssuedMillisTracksTheStateForWatermarks) {
  ManualClock clock(kStartMillis * 1000);
  auto gen = MakeGenerator(clock);
  EXPECT_EQ(gen->last_issued_unix_millis(), 0);
  NextOrDie(*gen);
  EXPECT_EQ(gen->last_issued_unix_millis(), kStartMillis);
  clock.AdvanceMillis(7);
  NextOrDie(*gen);
  EXPECT_EQ(gen->last_issued_unix_millis(), kStartMillis + 7);
}

// The issue's headline test: 4 threads x 1,000,000 IDs on the real clock.
TEST(GeneratorTest, FourThreadsMillionIdsEachAllDistinctAndPerThreadIncreasing) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1'000'000;
  auto gen = MakeGenerator(SystemClock::Instance(), 42);
  std::vector<std::vector<uint64_t>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint64_t>& ids = per_thread[t];
      ids.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) {
        Result<uint64_t> id = gen->Next();
        if (!id.ok()) return;  // caught below as a short vector
        ids.push_back(*id);
      }
    });
  }
  for (std::thread& th : threads) th.join();

  std::vector<uint64_t> all;
  all.reserve(size_t{kThreads} * kPerThread);
  for (const auto& ids : per_thread) {
    ASSERT_EQ(ids.size(), size_t{kPerThread});
    for (size_t i = 1; i < ids.size(); ++i) ASSERT_GT(ids[i], ids[i - 1]) << "at " << i;
    for (uint64_t id : ids) ASSERT_EQ(kDefault.WorkerIdOf(id), 42u);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate ID";
}

TEST(GeneratorTest, ConcurrentBatchesAndSinglesNeverOverlap) {
  constexpr int kThreads = 4;
  auto gen = MakeGenerator(SystemClock::Instance(), 3);
  std::vector<std::vector<uint64_t>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint64_t> batch(t + 1 == kThreads ? 1 : 100 * (t + 1));
      for (int i = 0; i < 2000; ++i) {
        if (!gen->NextN(batch).ok()) return;
        per_thread[t].insert(per_thread[t].end(), batch.begin(), batch.end());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::vector<uint64_t> all;
  for (const auto& ids : per_thread) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    all.insert(all.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), size_t{2000} * (100 + 200 + 300 + 1));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate ID";
}

}  // namespace
}  // namespace katsubushi

namespace katsubushi {
namespace {

// Run under TSan in CI: 8 threads issue with Next() and NextN() while another
// thread moves the clock forward and back (within the rollback bound and
// beyond it). Every ID issued must be distinct, and each thread's increasing.
TEST(GeneratorTest, HammerWhileTheClockMovesBothWays) {
  constexpr int kThreads = 8;
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(false);
  auto gen = MakeGenerator(clock, 17, kDefault, milliseconds(5));
  std::atomic<bool> done{false};
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::atomic<uint64_t> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint64_t> batch(static_cast<size_t>(1 + t * 37));
      while (!done.load(std::memory_order_relaxed)) {
        if (t % 2 == 0) {
          Result<uint64_t> id = gen->Next();
          if (id.ok()) got[t].push_back(*id); else refused.fetch_add(1, std::memory_order_relaxed);
        } else if (gen->NextN(batch).ok()) {
          got[t].insert(got[t].end(), batch.begin(), batch.end());
        } else {
          refused.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  std::thread mover([&] {
    for (int step = 0; step < 3000; ++step) {
      if (step % 100 == 99) {
        clock.AdvanceMillis(-20);  // beyond the bound: refusals until it is back
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        clock.AdvanceMillis(21);
      } else if (step % 10 == 9) {
        clock.AdvanceMillis(-3);  // within the bound: absorbed
        std::this_thread::sleep_for(std::chrono::microseconds(20));
        clock.AdvanceMillis(4);
      } else {
        clock.AdvanceMillis(1);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    done.store(true, std::memory_order_relaxed);
    clock.AdvanceMillis(1000);  // release anyone waiting for a tick
  });
  mover.join();
  for (auto& th : threads) th.join();

  std::vector<uint64_t> all;
  for (const auto& ids : got) {
    for (size_t i = 1; i < ids.size(); ++i) ASSERT_GT(ids[i], ids[i - 1]);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate ID";
  EXPECT_GT(all.size(), 10'000u);
  EXPECT_GT(refused.load(), 0u) << "the large steps back were never refused";
  EXPECT_GT(gen->counters().rollbacks_absorbed, 0u);
}

}  // namespace
}  // namespace katsubushi
