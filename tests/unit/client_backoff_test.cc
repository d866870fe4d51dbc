// How long a failed server is passed over, on a clock the test moves.
#include "katsubushi/client/backoff.h"

#include <gtest/gtest.h>

#include "katsubushi/clock.h"

namespace katsubushi::client {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kStart = 1795305600000000;

TEST(ServerBackoff, HealthyServerIsNotSkipped) {
  ManualClock clock(kStart);
  ServerBackoff backoff(clock, milliseconds(100), milliseconds(5000));
  EXPECT_FALSE(backoff.Skipped());
  backoff.RecordSuccess();
  EXPECT_FALSE(backoff.Skipped());
}

TEST(ServerBackoff, SkippedForTheIntervalExactly) {
  ManualClock clock(kStart);
  ServerBackoff backoff(clock, milliseconds(100), milliseconds(5000));
  backoff.RecordFailure();
  EXPECT_TRUE(backoff.Skipped());
  clock.Advance(99'999);
  EXPECT_TRUE(backoff.Skipped());
  clock.Advance(1);
  EXPECT_FALSE(backoff.Skipped());
}

TEST(ServerBackoff, DoublesPerConsecutiveFailureUpToTheMaximum) {
  ManualClock clock(kStart);
  ServerBackoff backoff(clock, milliseconds(100), milliseconds(5000));
  const int64_t expected_ms[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
  for (int64_t ms : expected_ms) {
    EXPECT_EQ(backoff.NextIntervalMicros(), ms * 1000);
    backoff.RecordFailure();
    clock.Advance(ms * 1000 - 1);
    EXPECT_TRUE(backoff.Skipped()) << ms;
    clock.Advance(1);
    EXPECT_FALSE(backoff.Skipped()) << ms;
  }
  for (int i = 0; i < 100; ++i) backoff.RecordFailure();  // no overflow after many
  EXPECT_EQ(backoff.NextIntervalMicros(), 5'000'000);
}

TEST(ServerBackoff, OneSuccessClearsIt) {
  ManualClock clock(kStart);
  ServerBackoff backoff(clock, milliseconds(100), milliseconds(5000));
  backoff.RecordFailure();
  backoff.RecordFailure();
  backoff.RecordFailure();
  backoff.RecordSuccess();
  EXPECT_FALSE(backoff.Skipped());
  EXPECT_EQ(backoff.NextIntervalMicros(), 100'000);
}

}  // namespace
}  // namespace katsubushi::client
