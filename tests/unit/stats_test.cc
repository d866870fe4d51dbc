#include "katsubushi/stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>
#include <vector>

namespace katsubushi {
namespace {

TEST(StatsTest, CountsKeepGoKatsubushiMeaningAndSplitByFront) {
  Stats stats;
  stats.ConnectionOpened(Front::kMemcacheText);
  stats.ConnectionOpened(Front::kMemcacheText);
  stats.ConnectionOpened(Front::kHttp);
  stats.ConnectionClosed(Front::kMemcacheText);
  stats.CountGet(Front::kMemcacheText);   // a get with 3 keys is one command...
  stats.CountIssued(Front::kMemcacheText, 3);  // ...and three hits
  stats.CountGet(Front::kGrpc);
  stats.CountFailed(Front::kGrpc, kClockMovedBackwards, 10);

  const StatsSnapshot s = stats.Snapshot();
  EXPECT_EQ(s.pid, ::getpid());
  EXPECT_EQ(s.curr_connections, 2u);
  EXPECT_EQ(s.total_connections, 3u);
  EXPECT_EQ(s.cmd_get, 2u);
  EXPECT_EQ(s.get_hits, 3u);
  EXPECT_EQ(s.get_misses, 10u);
  EXPECT_EQ(s.curr_connections_by_front[static_cast<size_t>(Front::kMemcacheText)], 1u);
  EXPECT_EQ(s.ids_by_front[static_cast<size_t>(Front::kMemcacheText)], 3u);
  EXPECT_EQ(s.misses_by_front[static_cast<size_t>(Front::kGrpc)], 10u);
  EXPECT_EQ(s.misses_by_error[static_cast<size_t>(IssueError::kClockRollback)], 10u);
  EXPECT_GE(s.unix_time, 1'700'000'000);
  EXPECT_GE(s.uptime_seconds, 0);
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
  EXPECT_EQ(FrontName(Front::kMemcacheBinary), "memcache_binary");
}

}  // namespace
}  // namespace katsubushi
