// The sd_notify(3) protocol without libsystemd: $NOTIFY_SOCKET addresses
// (paths and the abstract namespace), the datagram lines, the watchdog and
// MAINPID rules; and the sender against a real unix datagram socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <string>

#include <gtest/gtest.h>

#include "systemd/notify_protocol.h"
#include "systemd/notify_socket.h"

namespace katsubushi::systemd {
namespace {

using std::chrono::microseconds;

// `first` then n - 1 'x' (GCC 12 warns falsely on "literal" + std::string).
std::string Name(char first, size_t n) {
  std::string name(n, 'x');
  name[0] = first;
  return name;
}

TEST(NotifySocketAddress, PathAndAbstractName) {
  ParsedNotifySocket path = ParseNotifySocket("/run/systemd/notify");
  ASSERT_TRUE(path.address) << path.error;
  EXPECT_EQ(*path.address, (NotifyAddress{"/run/systemd/notify", false}));

  ParsedNotifySocket abstract = ParseNotifySocket("@/org/freedesktop/systemd1/notify/42");
  ASSERT_TRUE(abstract.address) << abstract.error;
  EXPECT_EQ(*abstract.address, (NotifyAddress{"/org/freedesktop/systemd1/notify/42", true}));
}

TEST(NotifySocketAddress, UnsetIsNoAddressAndNoError) {
  ParsedNotifySocket parsed = ParseNotifySocket("");
  EXPECT_FALSE(parsed.address);
  EXPECT_EQ(parsed.error, "");
}

TEST(NotifySocketAddress, RejectsWhatIsNotAUnixAddress) {
  for (const char* bad : {"vsock:2:1234", "notify", "@", "./notify"}) {
    ParsedNotifySocket parsed = ParseNotifySocket(bad);
    EXPECT_FALSE(parsed.address) << bad;
    EXPECT_NE(parsed.error, "") << bad;
  }
  EXPECT_FALSE(ParseNotifySocket(std::string_view("/a\0b", 4)).address);
}

TEST(NotifySocketAddress, LengthLimitIsSunPath) {
  const size_t max_name = sizeof(sockaddr_un::sun_path) - 1;
  EXPECT_TRUE(ParseNotifySocket(Name('/', max_name)).address);
  EXPECT_FALSE(ParseNotifySocket(Name('/', max_name + 1)).address);
  EXPECT_TRUE(ParseNotifySocket(Name('@', max_name + 1)).address);
  EXPECT_FALSE(ParseNotifySocket(Name('@', max_name + 2)).address);
}

TEST(NotifySocketAddress, SockaddrOfAPathEndsInNul) {
  sockaddr_un addr;
  const socklen_t length = ToSockaddr({"/tmp/n", false}, &addr);
  EXPECT_EQ(addr.sun_family, AF_UNIX);
  EXPECT_EQ(length, offsetof(sockaddr_un, sun_path) + 7);
  EXPECT_EQ(std::string(addr.sun_path, 7), std::string("/tmp/n\0", 7));
}

TEST(NotifySocketAddress, SockaddrOfAnAbstractNameStartsWithNulAndCountsNoTrailingNul) {
  sockaddr_un addr;
  const socklen_t length = ToSockaddr({"abc", true}, &addr);
  EXPECT_EQ(length, offsetof(sockaddr_un, sun_path) + 4);
  EXPECT_EQ(std::string(addr.sun_path, 4), std::string("\0abc", 4));
}

TEST(NotifyLines, StatusIsOneLine) {
  EXPECT_EQ(StatusLine("waiting for Redis"), "STATUS=waiting for Redis");
  EXPECT_EQ(StatusLine("a\nb\rc\td"), "STATUS=a b c d");
}

TEST(NotifyLines, LongStatusIsCutAtACharacterBoundary) {
  EXPECT_EQ(StatusLine(std::string(kMaxStatusBytes + 10, 'x')).size(),
            std::string("STATUS=").size() + kMaxStatusBytes);
  // "é" is two bytes; one that straddles the limit is dropped whole.
  std::string text(kMaxStatusBytes - 1, 'x');
  text += "\xC3\xA9";
  EXPECT_EQ(StatusLine(text), std::string("STATUS=").append(kMaxStatusBytes - 1, 'x'));
}

TEST(NotifyLines, MainPid) { EXPECT_EQ(MainPidLine(4711), "MAINPID=4711"); }

TEST(Watchdog, PingsAtHalfTheTimeout) {
  EXPECT_EQ(WatchdogPingInterval("30000000", "", 10), microseconds(15'000'000));
  EXPECT_EQ(WatchdogPingInterval("1", "", 10), microseconds(1));
}

TEST(Watchdog, OffWhenUnsetInvalidOrForAnotherProcess) {
  EXPECT_FALSE(WatchdogPingInterval("", "", 10));
  EXPECT_FALSE(WatchdogPingInterval("0", "", 10));
  EXPECT_FALSE(WatchdogPingInterval("-5", "", 10));
  EXPECT_FALSE(WatchdogPingInterval("10s", "", 10));
  EXPECT_FALSE(WatchdogPingInterval("18446744073709551615", "", 10));
  EXPECT_FALSE(WatchdogPingInterval("30000000", "11", 10));
  EXPECT_FALSE(WatchdogPingInterval("30000000", "x", 10));
  EXPECT_EQ(WatchdogPingInterval("30000000", "10", 10), microseconds(15'000'000));
}

TEST(MainPid, OnlyWhenSystemdStartedAnotherProcess) {
  EXPECT_FALSE(NeedsMainPid("", 10));
  EXPECT_FALSE(NeedsMainPid("10", 10));
  EXPECT_FALSE(NeedsMainPid("junk", 10));
  EXPECT_TRUE(NeedsMainPid("9", 10));
}

// The sender against a real datagram socket in the abstract namespace.
TEST(NotifySender, OneDatagramPerMessage) {
  const int receiver = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(receiver, 0);
  const NotifyAddress address{std::string("katsubushi-notify-test-").append(std::to_string(::getpid())),
                              true};
  sockaddr_un addr;
  const socklen_t length = ToSockaddr(address, &addr);
  ASSERT_EQ(::bind(receiver, reinterpret_cast<sockaddr*>(&addr), length), 0);

  NotifySocket sender(address);
  std::string error;
  ASSERT_TRUE(sender.Send("READY=1\nSTATUS=up", &error)) << error;
  ASSERT_TRUE(sender.Send("WATCHDOG=1", &error)) << error;
  char buffer[256];
  ssize_t n = ::recv(receiver, buffer, sizeof(buffer), MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), "READY=1\nSTATUS=up");
  n = ::recv(receiver, buffer, sizeof(buffer), MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), "WATCHDOG=1");
  ::close(receiver);
}

TEST(NotifySender, NobodyListeningIsAnErrorNotABlock) {
  NotifySocket sender({"/nonexistent/katsubushi-notify", false});
  std::string error;
  EXPECT_FALSE(sender.Send("READY=1", &error));
  EXPECT_NE(error.find("/nonexistent/katsubushi-notify"), std::string::npos) << error;
}

}  // namespace
}  // namespace katsubushi::systemd
