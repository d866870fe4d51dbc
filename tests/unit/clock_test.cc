#include "katsubushi/clock.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

namespace katsubushi {
namespace {

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(SystemClockTest, StartsAtTheWallClock) {
  SystemClock clock;
  EXPECT_NEAR(static_cast<double>(clock.NowUnixMicros()), static_cast<double>(WallMicros()),
              50'000.0);
}

TEST(SystemClockTest, NeverGoesBackwardsInOneThread) {
  SystemClock clock;
  int64_t previous = clock.NowUnixMicros();
  for (int i = 0; i < 1'000'000; ++i) {
    const int64_t now = clock.NowUnixMicros();
    ASSERT_GE(now, previous);
    previous = now;
  }
}

TEST(SystemClockTest, WaitUntilReachesATargetInTheNearFuture) {
  SystemClock clock;
  for (int64_t ahead : {300, 3'000}) {
    // A wait must not overshoot by a whole millisecond: that would waste a
    // tick. The best of a few tries is judged: a wait that oversleeps does so
    // every time, while a loaded machine may deschedule any one try.
    int64_t best_overshoot = INT64_MAX;
    for (int attempt = 0; attempt < 5 && best_overshoot >= 1'000; ++attempt) {
      const int64_t target = clock.NowUnixMicros() + ahead;
      int calls = 0;
      while (clock.NowUnixMicros() < target) {
        clock.WaitUntil(target);
        ++calls;
        ASSERT_LT(calls, 1'000'000);
      }
      best_overshoot = std::min(best_overshoot, clock.NowUnixMicros() - target);
    }
    EXPECT_LT(best_overshoot, 1'000) << "ahead=" << ahead;
  }
}

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock(1'000'000);
  EXPECT_EQ(clock.NowUnixMicros(), 1'000'000);
  clock.AdvanceMillis(2);
  EXPECT_EQ(clock.NowUnixMicros(), 1'002'000);
  clock.Advance(-5);
  EXPECT_EQ(clock.NowUnixMicros(), 1'001'995);
  clock.SetMillis(7);
  EXPECT_EQ(clock.NowUnixMicros(), 7'000);
}

TEST(ManualClockTest, AutoAdvanceJumpsForwardOnlyAndCountsWaits) {
  ManualClock clock(5'000);
  clock.set_auto_advance(true);
  clock.WaitUntil(9'000);
  EXPECT_EQ(clock.NowUnixMicros(), 9'000);
  clock.WaitUntil(1'000);  // never backwards
  EXPECT_EQ(clock.NowUnixMicros(), 9'000);
  clock.set_auto_advance(false);
  clock.WaitUntil(20'000);
  EXPECT_EQ(clock.NowUnixMicros(), 9'000);
  EXPECT_EQ(clock.wait_count(), 3u);
}

}  // namespace
}  // namespace katsubushi
