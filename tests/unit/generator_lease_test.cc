// The generator's lease hooks: suspended start, the deadline checked on every
// issue, Suspend() linearizable with issuing, Resume() switching worker ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "katsubushi/generator_core.h"

namespace katsubushi {
namespace {

constexpr IdLayout kDefault = IdLayout::Default();
constexpr int64_t kStartMillis = 1795305600000;  // 2026-11-22T00:00:00Z
constexpr int64_t kStartMicros = kStartMillis * 1000;

std::unique_ptr<GeneratorCore> MakeLeased(Clock& clock) {
  GeneratorOptions options;
  options.start_suspended = true;
  auto created = GeneratorCore::Create(clock, options);
  EXPECT_TRUE(created.ok()) << created.status().message();
  return std::move(created).value();
}

TEST(GeneratorLeaseTest, SuspendedStartIssuesNothingUntilResumed) {
  ManualClock clock(kStartMicros);
  auto gen = MakeLeased(clock);
  EXPECT_TRUE(gen->suspended());
  EXPECT_EQ(gen->Next().status(), kNoWorkerId);
  uint64_t ids[4];
  EXPECT_EQ(gen->NextN(ids), kNoWorkerId);
  EXPECT_EQ(gen->CanIssue(), kNoWorkerId);

  ASSERT_TRUE(gen->Resume(42, kStartMicros + 1'000'000).ok());
  EXPECT_FALSE(gen->suspended());
  EXPECT_EQ(gen->worker_id(), 42u);
  Result<uint64_t> id = gen->Next();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(kDefault.WorkerIdOf(*id), 42u);
  EXPECT_EQ(kDefault.Decode(*id).unix_millis, kStartMillis);
}

TEST(GeneratorLeaseTest, DeadlineIsCheckedOnEveryIssueAndExtendedByRenewal) {
  ManualClock clock(kStartMicros);
  auto gen = MakeLeased(clock);
  ASSERT_TRUE(gen->Resume(3, kStartMicros + 1000).ok());
  EXPECT_TRUE(gen->Next().ok());
  clock.Advance(999);
  EXPECT_TRUE(gen->Next().ok());
  clock.Advance(1);  // exactly at the deadline: refused
  EXPECT_EQ(gen->Next().status(), kLeaseExpired);
  uint64_t ids[2];
  EXPECT_EQ(gen->NextN(ids), kLeaseExpired);
  EXPECT_EQ(gen->CanIssue(), kLeaseExpired);

  gen->ExtendLease(kStartMicros + 5000);
  Result<uint64_t> id = gen->Next();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(kDefault.WorkerIdOf(*id), 3u);
}

TEST(GeneratorLeaseTest, ABatchRunningAheadNeverCarriesTheDeadlinesTick) {
  ManualClock clock(kStartMicros);
  auto gen = MakeLeased(clock);
  // The deadline is the start of the next ms: this ms may be used up, but a
  // batch may not run ahead onto the next one.
  ASSERT_TRUE(gen->Resume(3, kStartMicros + 1000).ok());
  std::vector<uint64_t> fill(kDefault.ids_per_tick() - 1);
  ASSERT_TRUE(gen->NextN(fill).ok());
  uint64_t two[2];
  EXPECT_EQ(gen->NextN(two), kLeaseExpired);
  Result<uint64_t> last = gen->Next();  // the tick's last ID is still fine
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(kDefault.Decode(*last).unix_millis, kStartMillis);
  EXPECT_LE(kDefault.Decode(*last).unix_millis, LastMillisBefore(kStartMicros + 1000));
  gen->ExtendLease(kStartMicros + 1001);
  ASSERT_TRUE(gen->NextN(two).ok());
  EXPECT_EQ(kDefault.Decode(two[1]).unix_millis, kStartMillis + 1);
}

TEST(GeneratorLeaseTest, LastMillisBeforeIsTheLatestStampBeforeADeadline) {
  EXPECT_EQ(LastMillisBefore(kStartMicros + 1000), kStartMillis);
  EXPECT_EQ(LastMillisBefore(kStartMicros + 1), kStartMillis);
  EXPECT_EQ(LastMillisBefore(kStartMicros), kStartMillis - 1);
  EXPECT_EQ(LastMillisBefore(0), 0);
}

TEST(GeneratorLeaseTest, StaticWorkerIdHasNoDeadline) {
  ManualClock clock(kStartMicros);
  GeneratorOptions options;
  options.worker_id = 5;
  auto gen = std::move(GeneratorCore::Create(clock, options)).value();
  EXPECT_EQ(gen->lease_valid_until_micros(), INT64_MAX);
  clock.Advance(int64_t{86'400} * 1'000'000 * 365);
  EXPECT_TRUE(gen->Next().ok());
}

TEST(GeneratorLeaseTest, ResumeWithAnotherWorkerIdKeepsTheSlotFloor) {
  ManualClock clock(kStartMicros);
  auto gen = MakeLeased(clock);
  ASSERT_TRUE(gen->Resume(1, INT64_MAX).ok());
  const uint64_t before = *gen->Next();

  gen->Suspend();
  // The new worker id's previous holder issued up to 50 ms ahead of our clock.
  const int64_t watermark = kStartMillis + 50;
  EXPECT_TRUE(gen->AdvancePast(watermark, std::chrono::milliseconds(100)).ok());
  EXPECT_EQ(gen->Next().status(), kNoWorkerId) << "AdvancePast must not resume";
  ASSERT_TRUE(gen->Resume(2, INT64_MAX).ok());
  const uint64_t after = *gen->Next();
  EXPECT_EQ(kDefault.WorkerIdOf(before), 1u);
  EXPECT_EQ(kDefault.WorkerIdOf(after), 2u);
  EXPECT_GT(kDefault.Decode(after).unix_millis, watermark);
  EXPECT_GT(kDefault.SlotOf(after), kDefault.SlotOf(before));
}

TEST(GeneratorLeaseTest, ResumeRejectsWorkerIdOutsideTheLayout) {
  ManualClock clock(kStartMicros);
  auto gen = MakeLeased(clock);
  EXPECT_EQ(gen->Resume(1024, INT64_MAX).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(gen->suspended());
}

// Suspend() is linearizable with issuing: once it returns, no thread gets an
// ID, and every ID any thread got is still unique and carries a worker id
// that was granted while that ID's slot was reserved.
TEST(GeneratorLeaseTest, SuspendAndResumeUnderConcurrentIssuing) {
  ManualClock clock(kStartMicros);
  auto gen = MakeLeased(clock);
  ASSERT_TRUE(gen->Resume(10, INT64_MAX).ok());

  constexpr int kThreads = 3;
  constexpr int kRounds = 100;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> issued_while_suspended{0};
  std::atomic<uint64_t> issued{0};
  // Odd while suspended: incremented after Suspend() returns and again before
  // Resume() starts.
  std::atomic<uint64_t> phase{0};
  std::vector<std::vector<uint64_t>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!stop.load(std::memory_order_relaxed)) {
        // The same odd phase before and after: the whole call ran while
        // suspended, so it must have failed.
        const uint64_t before = phase.load(std::memory_order_acquire);
        Result<uint64_t> id = gen->Next();
        const uint64_t after = phase.load(std::memory_order_acquire);
        if (id.ok()) {
          per_thread[t].push_back(*id);
          issued.fetch_add(1, std::memory_order_relaxed);
          if (before == after && before % 2 == 1) issued_while_suspended.fetch_add(1);
        }
        // Leave the controlling thread some CPU on a 2-core machine.
        if (per_thread[t].size() % 64 == 0) std::this_thread::yield();
      }
    });
  }
  // On a loaded machine the issuing threads may not have run yet: the rounds
  // below only test something once they are issuing.
  while (issued.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  for (int round = 0; round < kRounds; ++round) {
    clock.Advance(300);
    gen->Suspend();
    phase.fetch_add(1, std::memory_order_acq_rel);
    std::this_thread::yield();
    phase.fetch_add(1, std::memory_order_acq_rel);
    ASSERT_TRUE(gen->Resume(10 + static_cast<uint32_t>(round % 3), INT64_MAX).ok());
    std::this_thread::yield();
  }
  stop = true;
  for (auto& th : threads) th.join();

  EXPECT_EQ(issued_while_suspended.load(), 0u);
  std::vector<uint64_t> all;
  for (const auto& ids : per_thread) all.insert(all.end(), ids.begin(), ids.end());
  ASSERT_GT(all.size(), 0u);
  // Slots are unique across worker ids (one state word), so IDs are too.
  std::vector<uint64_t> slots;
  for (uint64_t id : all) slots.push_back(kDefault.SlotOf(id));
  std::sort(slots.begin(), slots.end());
  EXPECT_EQ(std::adjacent_find(slots.begin(), slots.end()), slots.end());
  for (uint64_t id : all) {
    const uint32_t w = kDefault.WorkerIdOf(id);
    EXPECT_TRUE(w >= 10 && w <= 12) << w;
  }
}

// A lease that lives on the issue path: grants a worker id and a deadline
// when asked, or refuses.
class FakeRefresher : public LeaseRefresher {
 public:
  explicit FakeRefresher(ManualClock& clock) : clock_(clock) {}
  Status Refresh(GeneratorCore& generator, Reason reason) override {
    calls.push_back(reason);
    if (!grant) return Status(StatusCode::kUnavailable, "lease could not be confirmed");
    return generator.Resume(worker_id, clock_.NowUnixMicros() + validity_micros);
  }
  ManualClock& clock_;
  std::vector<Reason> calls;
  bool grant = true;
  uint32_t worker_id = 9;
  int64_t validity_micros = 20'000;
};

std::unique_ptr<GeneratorCore> MakeRefreshed(Clock& clock, LeaseRefresher& refresher,
                                         std::chrono::milliseconds idle) {
  GeneratorOptions options;
  options.start_suspended = true;
  options.refresher = &refresher;
  options.revalidate_after_idle = idle;
  return std::move(GeneratorCore::Create(clock, options)).value();
}

TEST(GeneratorRefresherTest, FirstIdAcquiresLazily) {
  ManualClock clock(kStartMicros);
  FakeRefresher refresher(clock);
  auto gen = MakeRefreshed(clock, refresher, std::chrono::milliseconds(0));
  EXPECT_TRUE(refresher.calls.empty()) << "nothing at construction";
  Result<uint64_t> id = gen->Next();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(kDefault.WorkerIdOf(*id), 9u);
  ASSERT_EQ(refresher.calls.size(), 1u);
  EXPECT_EQ(refresher.calls[0], LeaseRefresher::Reason::kSuspended);
  EXPECT_TRUE(gen->Next().ok());
  EXPECT_EQ(refresher.calls.size(), 1u) << "no refresh while the lease is good";
}

TEST(GeneratorRefresherTest, DeadlineAsksAgainAndARefusalIsTheCallersError) {
  ManualClock clock(kStartMicros);
  FakeRefresher refresher(clock);
  auto gen = MakeRefreshed(clock, refresher, std::chrono::milliseconds(0));
  ASSERT_TRUE(gen->Next().ok());
  clock.Advance(20'000);
  ASSERT_TRUE(gen->Next().ok());
  EXPECT_EQ(refresher.calls.back(), LeaseRefresher::Reason::kDeadline);
  clock.Advance(20'000);
  refresher.grant = false;
  EXPECT_EQ(gen->Next().status().message(), "lease could not be confirmed");
  uint64_t ids[3];
  EXPECT_FALSE(gen->NextN(ids).ok());
}

TEST(GeneratorRefresherTest, IdleGapRevalidatesBeforeIssuing) {
  ManualClock clock(kStartMicros);
  FakeRefresher refresher(clock);
  refresher.validity_micros = 60'000'000;
  auto gen = MakeRefreshed(clock, refresher, std::chrono::milliseconds(100));
  ASSERT_TRUE(gen->Next().ok());
  clock.AdvanceMillis(50);
  ASSERT_TRUE(gen->Next().ok());
  EXPECT_EQ(refresher.calls.size(), 1u);
  clock.AdvanceMillis(150);  // frozen between events
  refresher.worker_id = 10;  // the lease moved while we slept
  Result<uint64_t> id = gen->Next();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(refresher.calls.back(), LeaseRefresher::Reason::kIdle);
  EXPECT_EQ(kDefault.WorkerIdOf(*id), 10u);
  // A refusal on an idle check refuses the ID.
  clock.AdvanceMillis(150);
  refresher.grant = false;
  EXPECT_FALSE(gen->Next().ok());
}

}  // namespace
}  // namespace katsubushi
