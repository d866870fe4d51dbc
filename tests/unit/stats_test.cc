#include "katsubushi/stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>
#include <vector>

namespace katsubushi {
namespace {

TEST(StatsTest, CountsKeepGoKatsubushiMeaningAndSplitByFront) {
  Stats stats;
  stats.ConnectionOpened(FrontLabel::kMemcacheText);
  stats.ConnectionOpened(FrontLabel::kMemcacheText);
  stats.ConnectionOpened(FrontLabel::kHttp);
  stats.ConnectionClosed(FrontLabel::kMemcacheText);
  stats.CountGet(FrontLabel::kMemcacheText);   // a get with 3 keys is one command...
  stats.CountIssued(FrontLabel::kMemcacheText, 3);  // ...and three hits
  stats.CountGet(FrontLabel::kGrpc);
  stats.CountFailed(FrontLabel::kGrpc, kClockMovedBackwards, 10);

  const StatsSnapshot s = stats.Snapshot();
  EXPECT_EQ(s.pid, ::getpid());
  EXPECT_EQ(s.curr_connections, 2u);
  EXPECT_EQ(s.total_connections, 3u);
  EXPECT_EQ(s.cmd_get, 2u);
  EXPECT_EQ(s.get_hits, 3u);
  EXPECT_EQ(s.get_misses, 10u);
  EXPECT_EQ(s.curr_connections_by_front[static_cast<size_t>(FrontLabel::kMemcacheText)], 1u);
  EXPECT_EQ(s.ids_by_front[static_cast<size_t>(FrontLabel::kMemcacheText)], 3u);
  EXPECT_EQ(s.misses_by_front[static_cast<size_t>(FrontLabel::kGrpc)], 10u);
  EXPECT_EQ(s.misses_by_error[static_cast<size_t>(IssueError::kClockRollback)], 10u);
  EXPECT_GE(s.unix_time, 1'700'000'000);
  EXPECT_GE(s.uptime_seconds, 0);
}

TEST(LatencyHistogramTest, BucketBoundsAreInclusiveUpperBounds) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketOf(5'000), 0u);
  EXPECT_EQ(LatencyHistogram::BucketOf(5'001), 1u);
  EXPECT_EQ(LatencyHistogram::BucketOf(1'000'000'000), kLatencyBuckets - 2);
  EXPECT_EQ(LatencyHistogram::BucketOf(1'000'000'001), kLatencyBuckets - 1);  // +Inf
  EXPECT_EQ(LatencyHistogram::BucketOf(UINT64_MAX), kLatencyBuckets - 1);
}

TEST(LatencyHistogramTest, CountsBatchesAndSumsAcrossThreads) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 1000; ++i) {
        h.Observe(std::chrono::microseconds(20));       // 25 µs bucket
        h.Observe(std::chrono::microseconds(300), 3);  // 500 µs bucket, a batch of 3
      }
    });
  }
  for (std::thread& t : threads) t.join();
  h.Observe(std::chrono::nanoseconds(-5));  // a clock oddity counts as 0, not 2^64
  const LatencySnapshot s = h.Snapshot();
  EXPECT_EQ(s.counts[LatencyHistogram::BucketOf(20'000)], 8000u);
  EXPECT_EQ(s.counts[LatencyHistogram::BucketOf(300'000)], 24'000u);
  EXPECT_EQ(s.counts[0], 1u);
  EXPECT_EQ(s.count(), 32'001u);
  EXPECT_EQ(s.sum_nanos, uint64_t{8000} * 20'000 + uint64_t{24'000} * 300'000);
}

TEST(StatsTest, DurationsAreKeptPerFront) {
  Stats stats;
  stats.ObserveDuration(FrontLabel::kGrpc, std::chrono::microseconds(7));
  stats.ObserveDuration(FrontLabel::kHttp, std::chrono::milliseconds(2), 2);
  const StatsSnapshot s = stats.Snapshot();
  EXPECT_EQ(s.duration_by_front[static_cast<size_t>(FrontLabel::kGrpc)].count(), 1u);
  EXPECT_EQ(s.duration_by_front[static_cast<size_t>(FrontLabel::kHttp)].count(), 2u);
  EXPECT_EQ(s.duration_by_front[static_cast<size_t>(FrontLabel::kHttp)].sum_nanos, 4'000'000u);
  EXPECT_EQ(s.duration_by_front[static_cast<size_t>(FrontLabel::kMemcacheText)].count(), 0u);
}

TEST(StatsTest, ShardedCounterSumsAcrossThreads) {
  ShardedCounter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100'000; ++i) counter.Add(1);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter.Sum(), 1'200'000u);
}

TEST(StatsTest, ErrorKindsHaveStableNames) {
  EXPECT_EQ(IssueErrorName(IssueErrorOf(kClockMovedBackwards)), "clock_moved_backwards");
  EXPECT_EQ(IssueErrorName(IssueErrorOf(kTimeOutOfRange)), "time_out_of_range");
  EXPECT_EQ(IssueErrorName(IssueErrorOf(Status(StatusCode::kInternal, "x"))), "other");
  EXPECT_EQ(FrontName(FrontLabel::kMemcacheBinary), "memcache_binary");
}

}  // namespace
}  // namespace katsubushi
