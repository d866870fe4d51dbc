// The pure parts of the worker id lease: the broadcast payload, candidate choice, the fencing deadline, the state file.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <regex>
#include <set>

#include "katsubushi/lease/raus_protocol.h"
#include "katsubushi/lease/state_file_keeper.h"

namespace katsubushi::lease {
namespace {

using std::chrono::milliseconds;

TEST(RausProtocolTest, KeysAndChannelAreRausBytes) {
  EXPECT_EQ(LockKey("raus", 17), "raus:id:17");
  EXPECT_EQ(BroadcastChannel("kb"), "kb:broadcast");
  EXPECT_EQ(BroadcastPayload("0b7c...", 5), "0b7c...:5");
  // Same cluster slot as the lock key: the hash tag is the lock key itself.
  EXPECT_EQ(WatermarkKey("raus", 17), "{raus:id:17}:watermark");
}

TEST(RausProtocolTest, ParseBroadcastAcceptsExactlyUuidColonId) {
  std::optional<Broadcast> b = ParseBroadcast("8d3b1a9e-6f4e-4a53-9d5c-2f7a1e0c4b21:1023");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->uuid, "8d3b1a9e-6f4e-4a53-9d5c-2f7a1e0c4b21");
  EXPECT_EQ(b->worker_id, 1023u);
  for (const char* bad : {"", "nocolon", "a:b:1", "u:", "u:x", "u:-1", "u:1 ", "u:99999999999"}) {
    EXPECT_FALSE(ParseBroadcast(bad).has_value()) << bad;
  }
}

TEST(RausProtocolTest, CandidatesAreTheLowestTenFreeIds) {
  EXPECT_EQ(Candidates(1, 1023, {}), (std::vector<uint32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(Candidates(1, 1023, {1, 3, 5}), (std::vector<uint32_t>{2, 4, 6, 7, 8, 9, 10, 11, 12, 13}));
  EXPECT_EQ(Candidates(5, 7, {6}), (std::vector<uint32_t>{5, 7}));
  EXPECT_TRUE(Candidates(5, 6, {5, 6}).empty());
  EXPECT_EQ(Candidates(1023, 1023, {}), (std::vector<uint32_t>{1023}));
}

TEST(RausProtocolTest, UuidIsVersion4Text) {
  const std::regex v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  const std::string a = NewUuid();
  const std::string b = NewUuid();
  EXPECT_TRUE(std::regex_match(a, v4)) << a;
  EXPECT_NE(a, b);
}

// The uuid is a holder's identity in the compare-and-set scripts. Processes
// forked from one parent start from identical memory (any PRNG state in it
// included), the closest two processes can come to "identical conditions":
// their uuids must still differ.
TEST(RausProtocolTest, UuidsOfProcessesStartedAlikeDiffer) {
  constexpr int kChildren = 8;
  // Drawn before the forks, so that any state behind NewUuid() is set up and
  // copied into every child.
  std::set<std::string> seen{NewUuid()};
  for (int i = 0; i < kChildren; ++i) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const std::string uuid = NewUuid();
      const ssize_t written = write(fds[1], uuid.data(), uuid.size());
      _exit(written == static_cast<ssize_t>(uuid.size()) ? 0 : 1);
    }
    close(fds[1]);
    char buffer[64] = {};
    const ssize_t n = read(fds[0], buffer, sizeof buffer);
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ(n, 36);
    seen.insert(std::string(buffer, static_cast<size_t>(n)));
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kChildren) + 1);
}

TEST(RausProtocolTest, DeadlineFollowsTheDesignFormula) {
  // L = 600 s: t0 + 594 s - 2 ms - 30 s.
  EXPECT_EQ(LeaseValidUntilMicros(1'000'000, milliseconds(600'000)),
            1'000'000 + 594'000'000 - 2'000 - 30'000'000);
  // L = 3 s: the 1 s floor of the margin applies.
  EXPECT_EQ(LeaseValidUntilMicros(0, milliseconds(3'000)), 2'970'000 - 2'000 - 1'000'000);
  // Always before the key's own expiry, and renewed well within it.
  for (int64_t l : {2'000, 3'000, 10'000, 60'000, 600'000, 3'600'000}) {
    const int64_t valid = LeaseValidUntilMicros(0, milliseconds(l));
    EXPECT_LT(valid, l * 1000);
    EXPECT_LT(RenewIntervalFor(milliseconds(l)).count() * 1000 * 2, valid) << l;
  }
  EXPECT_EQ(RenewIntervalFor(milliseconds(600'000)), milliseconds(1000));
}

TEST(StateFileTest, RoundTripAndRejectsAnythingElse) {
  EXPECT_EQ(FormatStateFile(7, 1795305600123), "katsubushi-state 1 7 1795305600123\n");
  Result<int64_t> t = ParseStateFile(FormatStateFile(7, 1795305600123));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, 1795305600123);
  EXPECT_TRUE(ParseStateFile("katsubushi-state 1 7 5").ok());
  for (const char* bad : {"", "garbage", "katsubushi-state 2 7 5\n", "katsubushi-state 1 7\n",
                          "katsubushi-state 1 7 -5\n", "katsubushi-state 1 7 5 6\n",
                          "katsubushi-state 1 x 5\n"}) {
    EXPECT_FALSE(ParseStateFile(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace katsubushi::lease
