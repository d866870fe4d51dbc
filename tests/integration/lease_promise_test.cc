// The Redis watermark as a promise, against a real redis-server, with manual
// clocks so that two holders can disagree about the time by as much as a test
// says: every ID a holder issues is covered by a watermark Redis already
// recorded, renewals raise it before the generator may use the new deadline,
// a clean release lowers it to the exact last ms, and a successor whose clock
// is behind refuses (kBehindWatermark) until its clock passes it, while its
// lease keeper goes on renewing.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "katsubushi/generator_core.h"
#include "katsubushi/lease/lease_commands.h"
#include "katsubushi/lease/raus_protocol.h"
#include "katsubushi/redis/redis_client.h"
#include "katsubushi/lease/redis_lease_keeper.h"
#include "katsubushi/lease/sync_redis_lease.h"

namespace katsubushi::lease {
namespace {

using std::chrono::milliseconds;

constexpr IdLayout kLayout = IdLayout::Default();
constexpr int64_t kStartMillis = 1795305600000;  // 2026-11-22T00:00:00Z
constexpr uint32_t kWorkerId = 5;

uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A redis-server of its own on a free loopback port, stopped by PID.
class RedisServer {
 public:
  RedisServer() : port_(FreePort()) {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--loglevel", "warning",
             static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~RedisServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  redis::RedisClientOptions ClientOptions(const std::string& ns) const {
    redis::RedisClientOptions options;
    options.url = *redis::ParseRedisUrl("redis://127.0.0.1:" + std::to_string(port_) + "/0?ns=" + ns);
    return options;
  }
  // Waits (bounded) until the server answers PING.
  bool Ready() const {
    RedisClient client(ClientOptions("x"));
    for (int i = 0; i < 100; ++i) {
      redis::RedisReply reply;
      if (client.Run({}, {"PING"}, &reply) && !reply.is_error()) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

class LeasePromiseTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.Ready()) << "redis-server did not start"; }

  // The id's watermark as Redis holds it now; -1 when absent.
  int64_t Watermark() {
    redis::RedisReply reply;
    EXPECT_TRUE(admin_.Run({}, {"GET", WatermarkKey(kNs, kWorkerId)}, &reply));
    return reply.type == redis::RedisReply::Type::kString ? std::stoll(reply.str) : -1;
  }
  bool LockHeld() {
    redis::RedisReply reply;
    EXPECT_TRUE(admin_.Run({}, {"EXISTS", LockKey(kNs, kWorkerId)}, &reply));
    return reply.integer == 1;
  }
  void DropLock() {  // the key expiring while its holder is cut off
    redis::RedisReply reply;
    ASSERT_TRUE(admin_.Run({}, {"DEL", LockKey(kNs, kWorkerId)}, &reply));
  }

  SyncLeaseOptions EmbeddedOptions() {
    SyncLeaseOptions options;
    options.redis = redis_.ClientOptions(kNs);
    options.min_worker_id = kWorkerId;
    options.max_worker_id = kWorkerId;
    options.ttl = milliseconds(3000);
    options.max_watermark_wait = milliseconds(0);  // manual clocks never move on their own
    return options;
  }

  // A generator whose lease is kept from its issue path (the embedded way).
  struct EmbeddedHolder {
    ManualClock clock;
    std::unique_ptr<SyncRedisLease> lease;
    std::unique_ptr<GeneratorCore> generator;

    EmbeddedHolder(int64_t start_micros, const SyncLeaseOptions& options) : clock(start_micros) {
      clock.set_auto_advance(false);
      lease = std::make_unique<SyncRedisLease>(clock, options);
      GeneratorOptions g;
      g.start_suspended = true;
      g.refresher = lease.get();
      generator = std::move(GeneratorCore::Create(clock, g)).value();
    }
  };

  static constexpr const char* kNs = "promise";
  RedisServer redis_;
  RedisClient admin_{redis_.ClientOptions(kNs)};
};

int64_t MillisOf(uint64_t id) { return kLayout.Decode(id).unix_millis; }

TEST_F(LeasePromiseTest, AcquisitionAndRenewalRecordThePromiseBeforeIssuingUpToIt) {
  EmbeddedHolder a(kStartMillis * 1000, EmbeddedOptions());
  Result<uint64_t> first = a.generator->Next();
  ASSERT_TRUE(first.ok()) << first.status().message();
  // TTL 3 s: the embedded deadline is a third of it, 1 s after the SET was sent.
  const int64_t deadline = kStartMillis * 1000 + 1'000'000;
  EXPECT_EQ(a.generator->lease_valid_until_micros(), deadline);
  EXPECT_EQ(Watermark(), LastMillisBefore(deadline));
  EXPECT_EQ(Watermark(), kStartMillis + 999);

  // Half a millisecond before the deadline, a batch that must run one tick
  // ahead (onto the deadline's own ms) has to renew first: its last ID is
  // stamped at the deadline, which the first promise does not cover.
  a.clock.Set(deadline - 500);
  std::vector<uint64_t> fill(kLayout.ids_per_tick() - 1);
  ASSERT_TRUE(a.generator->NextN(fill).ok());  // the rest of this tick
  const int64_t before_batch = Watermark();
  std::vector<uint64_t> batch(2);
  ASSERT_TRUE(a.generator->NextN(batch).ok());
  EXPECT_EQ(MillisOf(batch.back()), kStartMillis + 1000) << "the batch ran one tick ahead";
  EXPECT_GT(Watermark(), before_batch) << "the renewal recorded a new promise";
  EXPECT_LE(MillisOf(batch.back()), Watermark()) << "no ID beyond the recorded promise";
  EXPECT_EQ(a.generator->lease_valid_until_micros(), deadline - 500 + 1'000'000);
  EXPECT_EQ(Watermark(), LastMillisBefore(deadline - 500 + 1'000'000));
}

TEST_F(LeasePromiseTest, SuccessorBehindTheClockWaitsOutThePromiseOfACutOffHolder) {
  EmbeddedHolder a(kStartMillis * 1000, EmbeddedOptions());
  ASSERT_TRUE(a.generator->Next().ok());
  // A issues up to the end of its lease; then it is cut off (its key expires).
  a.clock.Set(a.generator->lease_valid_until_micros() - 1);
  Result<uint64_t> last_of_a = a.generator->Next();
  ASSERT_TRUE(last_of_a.ok());
  const int64_t promise = Watermark();
  EXPECT_EQ(MillisOf(*last_of_a), promise) << "A issued right up to its promise";
  DropLock();

  // B's clock is 12 s behind A's. It gets the id, but not the promised ms.
  EmbeddedHolder b((kStartMillis - 12'000) * 1000, EmbeddedOptions());
  EXPECT_EQ(b.generator->Next().status(), kBehindWatermark);
  EXPECT_EQ(b.generator->CanIssue(), kBehindWatermark);
  EXPECT_TRUE(LockHeld()) << "B holds the id while it waits";
  EXPECT_EQ(Watermark(), promise) << "B's own promise is lower and does not lower A's";
  // Not past it yet. (Within max_clock_rollback of it the generator would
  // wait for the clock instead, which a manual clock never ends.)
  b.clock.SetMillis(promise - 10);
  EXPECT_EQ(b.generator->Next().status(), kBehindWatermark);
  b.clock.SetMillis(promise + 1);
  Result<uint64_t> first_of_b = b.generator->Next();
  ASSERT_TRUE(first_of_b.ok()) << first_of_b.status().message();
  EXPECT_GT(MillisOf(*first_of_b), MillisOf(*last_of_a));
  EXPECT_EQ(kLayout.WorkerIdOf(*first_of_b), kWorkerId);
}

TEST_F(LeasePromiseTest, CleanReleaseRecordsTheExactLastMillisecond) {
  EmbeddedHolder a(kStartMillis * 1000, EmbeddedOptions());
  ASSERT_TRUE(a.generator->Next().ok());
  a.clock.AdvanceMillis(7);
  Result<uint64_t> last = a.generator->Next();
  ASSERT_TRUE(last.ok());
  EXPECT_GT(Watermark(), MillisOf(*last)) << "while held, the promise is ahead of the IDs";
  ASSERT_TRUE(a.lease->Release(*a.generator).ok());
  EXPECT_FALSE(LockHeld());
  EXPECT_EQ(Watermark(), MillisOf(*last)) << "released: exactly the last ms issued";

  // A successor whose clock is behind that ms still never goes below it.
  EmbeddedHolder b((kStartMillis - 100) * 1000, EmbeddedOptions());
  EXPECT_EQ(b.generator->Next().status(), kBehindWatermark);
  b.clock.SetMillis(MillisOf(*last) + 1);
  Result<uint64_t> next = b.generator->Next();
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, *last);
}

TEST_F(LeasePromiseTest, ReleaseAfterAFailedClaimNeverLowersTheWatermark) {
  // A holder that could not read the previous watermark releases with
  // "raise": a previous holder's promise stays.
  RedisClient client(redis_.ClientOptions(kNs));
  redis::RedisReply reply;
  ASSERT_TRUE(client.Run({}, {"SET", WatermarkKey(kNs, kWorkerId), std::to_string(kStartMillis + 60'000)},
                         &reply));
  std::string error;
  ASSERT_EQ(SetIfAbsent(client, kNs, kWorkerId, "uuid-x", milliseconds(3000), &error), LeaseReply::kOk);
  ASSERT_EQ(Release(client, kNs, kWorkerId, "uuid-x", kStartMillis, FinalWatermark::kRaise, &error),
            LeaseReply::kOk);
  EXPECT_EQ(Watermark(), kStartMillis + 60'000);
  // A release of a key that is not ours touches nothing.
  ASSERT_EQ(SetIfAbsent(client, kNs, kWorkerId, "uuid-y", milliseconds(3000), &error), LeaseReply::kOk);
  EXPECT_EQ(Release(client, kNs, kWorkerId, "uuid-x", 1, FinalWatermark::kExact, &error),
            LeaseReply::kNotOurs);
  EXPECT_EQ(Watermark(), kStartMillis + 60'000);
  EXPECT_TRUE(LockHeld());
}

// The server's keeper (a thread): a watermark far ahead of the clock is
// waited out while the lease is renewed; the wait must not cost the key (the
// lease expires after 2 s here, the wait lasts longer).
TEST_F(LeasePromiseTest, KeeperRenewsWhileTheClockIsBehindTheWatermark) {
  ManualClock clock(kStartMillis * 1000);
  clock.set_auto_advance(false);
  redis::RedisReply reply;
  const int64_t far = kStartMillis + 60'000;
  ASSERT_TRUE(admin_.Run({}, {"SET", WatermarkKey(kNs, kWorkerId), std::to_string(far)}, &reply));
  GeneratorOptions g;
  g.start_suspended = true;
  auto generator = std::move(GeneratorCore::Create(clock, g)).value();
  RedisLeaseOptions options;
  options.redis = redis_.ClientOptions(kNs);
  options.min_worker_id = kWorkerId;
  options.max_worker_id = kWorkerId;
  options.lease_expiry = milliseconds(2000);
  options.discovery = milliseconds(0);
  RedisLeaseKeeper keeper(*generator, clock, options);
  keeper.Start();
  const auto start = std::chrono::steady_clock::now();
  while (generator->suspended() && std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_FALSE(generator->suspended()) << "no lease within 5 s";
  EXPECT_EQ(generator->CanIssue(), kBehindWatermark);
  // Longer than the key's expiry: only renewals keep it ours.
  std::this_thread::sleep_for(milliseconds(3000));
  EXPECT_TRUE(LockHeld());
  EXPECT_EQ(keeper.counters().losses, 0u) << "the wait must not lose the lease";
  EXPECT_EQ(keeper.counters().acquisitions, 1u);
  EXPECT_EQ(generator->Next().status(), kBehindWatermark);
  EXPECT_EQ(Watermark(), far) << "our promises are below it";

  // The clock passes the watermark (and the deadline of the last renewal,
  // computed on this clock): the next renewal lets it issue.
  clock.SetMillis(far + 1);
  Result<uint64_t> id = generator->Next();
  for (int i = 0; i < 200 && !id.ok(); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
    id = generator->Next();
  }
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_GT(MillisOf(*id), far);
  keeper.Stop();
  EXPECT_FALSE(LockHeld());
  EXPECT_EQ(Watermark(), MillisOf(*id)) << "released with the exact last ms";
}

}  // namespace
}  // namespace katsubushi::lease
