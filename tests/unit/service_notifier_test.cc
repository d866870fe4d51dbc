// ServiceNotifier against a real generator (manual clock) and a real unix
// datagram socket: READY=1 waits for both the listeners and a worker id,
// STATUS= follows the generator, the lease keeper's words reach STATUS=,
// STOPPING=1 comes at the stop request and is the last message. Its thread
// runs here, so the TSan run in CI covers it.
#include "systemd/service_notifier.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stop_token>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "systemd/notify_protocol.h"

namespace katsubushi::systemd {
namespace {

constexpr int64_t kNowMicros = 1'700'000'000'000'000;

class ServiceNotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    receiver_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(receiver_, 0);
    address_ = NotifyAddress{std::string("katsubushi-notifier-test-").append(std::to_string(::getpid())), true};
    sockaddr_un addr;
    const socklen_t length = ToSockaddr(address_, &addr);
    ASSERT_EQ(::bind(receiver_, reinterpret_cast<sockaddr*>(&addr), length), 0);
    timeval timeout{0, 100'000};
    ::setsockopt(receiver_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    GeneratorOptions options;
    options.start_suspended = true;
    generator_ = std::move(GeneratorCore::Create(clock_, options)).value();
  }
  void TearDown() override { ::close(receiver_); }

  NotifyEnvironment Environment() const {
    return {"@" + address_.name, "", "", ""};
  }

  // Every datagram that arrives within `window`.
  std::vector<std::string> Receive(std::chrono::milliseconds window) {
    std::vector<std::string> messages;
    const auto deadline = std::chrono::steady_clock::now() + window;
    char buffer[1024];
    while (std::chrono::steady_clock::now() < deadline) {
      const ssize_t n = ::recv(receiver_, buffer, sizeof(buffer), 0);
      if (n > 0) messages.emplace_back(buffer, static_cast<size_t>(n));
    }
    return messages;
  }

  static bool AnyContains(const std::vector<std::string>& messages, std::string_view text) {
    for (const std::string& m : messages) {
      if (m.find(text) != std::string::npos) return true;
    }
    return false;
  }

  int receiver_ = -1;
  NotifyAddress address_;
  ManualClock clock_{kNowMicros};
  std::unique_ptr<GeneratorCore> generator_;
};

TEST_F(ServiceNotifierTest, ReadyNeedsListenersAndAWorkerId) {
  std::stop_source stop;
  ServiceNotifier notifier(*generator_, stop.get_token(), Environment());
  lease::LogFunction log = notifier.LeaseLog(nullptr);
  log(lease::LogLevel::kWarning, "cannot reach Redis (retrying)");
  std::vector<std::string> got = Receive(std::chrono::milliseconds(300));
  EXPECT_FALSE(AnyContains(got, "READY=1"));
  EXPECT_TRUE(AnyContains(got, "STATUS=not issuing IDs: no worker id held (waiting for a lease); "
                               "lease: cannot reach Redis (retrying)"));

  ASSERT_TRUE(generator_->Resume(17, kNowMicros + 60'000'000).ok());
  got = Receive(std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);  // a worker id, but the listeners are not up yet
  EXPECT_EQ(got[0], "STATUS=worker id 17 held; starting listeners");

  notifier.ListenersUp();
  got = Receive(std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "READY=1\nSTATUS=issuing IDs as worker id 17");

  generator_->Suspend();  // lease lost: STATUS= says so, READY=1 is not repeated
  got = Receive(std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "STATUS=not issuing IDs: no worker id held (waiting for a lease)");

  stop.request_stop();
  got = Receive(std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind("STOPPING=1\n", 0), 0u) << got[0];
}

TEST_F(ServiceNotifierTest, NothingWithoutNotifySocket) {
  std::stop_source stop;
  ASSERT_TRUE(generator_->Resume(3, kNowMicros + 60'000'000).ok());
  ServiceNotifier notifier(*generator_, stop.get_token(), NotifyEnvironment{});
  notifier.ListenersUp();
  stop.request_stop();
  EXPECT_TRUE(Receive(std::chrono::milliseconds(200)).empty());
}

}  // namespace
}  // namespace katsubushi::systemd
