// The memcached front over real sockets: an in-process server on 127.0.0.1
// with an ephemeral port, driven by plain blocking sockets with timeouts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"
#include "memcache/memcache_server.h"
#include "test_client.h"

namespace katsubushi::memcache {
namespace {

using namespace std::chrono_literals;
using katsubushi::testing::Client;

constexpr uint32_t kWorker = 77;
constexpr IdLayout kLayout = IdLayout::Default();

size_t RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

// Parses the IDs out of a text reply.
std::vector<uint64_t> TextIds(const std::string& reply) {
  std::vector<uint64_t> ids;
  size_t pos = 0;
  while ((pos = reply.find("VALUE ", pos)) != std::string::npos) {
    const size_t data = reply.find("\r\n", pos) + 2;
    ids.push_back(std::stoull(reply.substr(data, reply.find("\r\n", data) - data)));
    pos = data;
  }
  return ids;
}

std::string BinaryRequest(uint8_t opcode, uint32_t opaque, std::string_view key = {},
                          std::optional<uint32_t> body_override = std::nullopt) {
  std::string r(24, '\0');
  r[0] = static_cast<char>(0x80);
  r[1] = static_cast<char>(opcode);
  r[3] = static_cast<char>(key.size());
  const uint32_t body = body_override.value_or(static_cast<uint32_t>(key.size()));
  for (int i = 0; i < 4; ++i) r[8 + i] = static_cast<char>(body >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) r[12 + i] = static_cast<char>(opaque >> (24 - 8 * i));
  return r + std::string(key);
}

uint32_t BodyLength(const std::string& packet, size_t at = 0) {
  const auto* b = reinterpret_cast<const unsigned char*>(packet.data() + at);
  return (uint32_t{b[8]} << 24) | (uint32_t{b[9]} << 16) | (uint32_t{b[10]} << 8) | b[11];
}

class MemcacheServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = {}) {
    // As main() does, create spdlog's registry before the worker threads: its
    // lazy first use from two of them at once (two idle closes) is ordered by
    // a guard inside the uninstrumented libspdlog, which TSan cannot see.
    spdlog::default_logger_raw();
    GeneratorOptions g;
    g.worker_id = kWorker;
    generator_ = std::move(GeneratorCore::Create(SystemClock::Instance(), g)).value();
    context_ = std::make_unique<memcache::ServiceContext>(
        memcache::ServiceContext{*generator_, stats_, "1.2.3"});
    options.tcp_address = options.tcp_address.empty() ? "127.0.0.1" : options.tcp_address;
    options.tcp_port = 0;
    if (options.threads == 1) options.threads = 2;
    server_ = std::make_unique<MemcacheServer>(*context_, options);
    ASSERT_FALSE(server_->Start());
    port_ = server_->tcp_port();
  }
  void TearDown() override {
    if (server_) server_->Stop(2s);
  }

  // A fresh client still gets an ID: the server survived whatever came before.
  void ExpectServerHealthy() {
    Client c(port_);
    ASSERT_TRUE(c.connected());
    c.Send("get alive\r\n");
    const std::string reply = c.ReadUntilSuffix("END\r\n");
    ASSERT_EQ(TextIds(reply).size(), 1u) << reply;
    EXPECT_EQ(kLayout.WorkerIdOf(TextIds(reply)[0]), kWorker);
  }

  Stats stats_;
  std::unique_ptr<GeneratorCore> generator_;
  std::unique_ptr<memcache::ServiceContext> context_;
  std::unique_ptr<MemcacheServer> server_;
  uint16_t port_ = 0;
};

TEST_F(MemcacheServerTest, TextTranscript) {
  StartServer();
  Client c(port_);
  c.Send("GET new\r\n");
  const std::string one = c.ReadUntilSuffix("END\r\n");
  const std::vector<uint64_t> ids = TextIds(one);
  ASSERT_EQ(ids.size(), 1u);
  const std::string id = std::to_string(ids[0]);
  EXPECT_EQ(one, "VALUE new 0 " + std::to_string(id.size()) + "\r\n" + id + "\r\nEND\r\n");
  EXPECT_EQ(kLayout.WorkerIdOf(ids[0]), kWorker);

  c.Send("get id1 id2\r\n");
  const std::vector<uint64_t> two = TextIds(c.ReadUntilSuffix("END\r\n"));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_GT(two[0], ids[0]);
  EXPECT_GT(two[1], two[0]);

  c.Send("version\r\n");
  EXPECT_EQ(c.ReadUntilSuffix("\r\n"), "VERSION 1.2.3\r\n");
  c.Send("bogus\r\n");
  EXPECT_EQ(c.ReadUntilSuffix("\r\n"), "ERROR\r\n");
  c.Send("\r\n");
  EXPECT_EQ(c.ReadUntilSuffix("\r\n"), "ERROR\r\n");
  c.Send("stats\r\n");
  const std::string stats = c.ReadUntilSuffix("END\r\n");
  EXPECT_NE(stats.find("STAT curr_connections 1\r\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("STAT cmd_get 2\r\nSTAT get_hits 3\r\nSTAT get_misses 0\r\nEND\r\n"),
            std::string::npos)
      << stats;
  c.Send("quit\r\n");
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(MemcacheServerTest, BinaryTranscript) {
  StartServer();
  Client c(port_);
  c.Send(BinaryRequest(0x00, 0xcafebabe, "k"));
  std::string reply = c.ReadUntil([](const std::string& b) { return b.size() >= 24 && b.size() >= 24 + BodyLength(b); });
  ASSERT_GE(reply.size(), 28u);
  EXPECT_EQ(reply.substr(0, 8), std::string("\x81\x00\x00\x00\x04\x00\x00\x00", 8));
  EXPECT_EQ(reply.substr(12, 12), std::string("\xca\xfe\xba\xbe\0\0\0\0\0\0\0\0", 12));
  EXPECT_EQ(reply.substr(24, 4), std::string(4, '\0'));
  const uint64_t id = std::stoull(reply.substr(28));
  EXPECT_EQ(kLayout.WorkerIdOf(id), kWorker);
  EXPECT_EQ(BodyLength(reply), 4 + std::to_string(id).size());

  c.Send(BinaryRequest(0x0b, 1) + BinaryRequest(0x55, 2));
  reply = c.ReadBytes(24 + 5 + 24 + 15);
  EXPECT_EQ(reply, std::string("\x81\x0b\0\0\0\0\0\0\0\0\0\x05\0\0\0\x01\0\0\0\0\0\0\0\0" "1.2.3", 29) +
                       std::string("\x81\x55\0\0\0\0\x00\x81\0\0\0\x0f\0\0\0\x02\0\0\0\0\0\0\0\0"
                                   "Unknown command", 39));
}

TEST_F(MemcacheServerTest, PipelinedRequestsAnsweredInOrder) {
  StartServer();
  Client c(port_);
  std::string batch;
  for (int i = 0; i < 500; ++i) batch += "get k" + std::to_string(i) + "\r\n";
  c.Send(batch);
  const std::string reply = c.ReadUntil([](const std::string& b) {
    size_t n = 0, pos = 0;
    while ((pos = b.find("END\r\n", pos)) != std::string::npos) ++n, pos += 5;
    return n == 500;
  });
  const std::vector<uint64_t> ids = TextIds(reply);
  ASSERT_EQ(ids.size(), 500u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  for (int i = 0; i < 500; i += 99) {
    EXPECT_NE(reply.find("VALUE k" + std::to_string(i) + " "), std::string::npos);
  }
}

TEST_F(MemcacheServerTest, InputLargerThanOneReadIsAllAnswered) {
  // 200 KB of commands in one burst: more than one read's worth, so the
  // server must keep reading without waiting for another readiness edge.
  StartServer();
  Client c(port_);
  constexpr int kCommands = 20'000;
  std::string burst;
  for (int i = 0; i < kCommands; ++i) burst += "version\r\n";
  std::thread sender([&] { c.Send(burst); });
  const std::string reply = c.ReadUntil(
      [](const std::string& b) { return b.size() >= kCommands * std::string("VERSION 1.2.3\r\n").size(); },
      10s);
  sender.join();
  EXPECT_EQ(reply.size(), kCommands * std::string("VERSION 1.2.3\r\n").size());
  EXPECT_TRUE(reply.ends_with("VERSION 1.2.3\r\n"));
}

TEST_F(MemcacheServerTest, OneByteAtATime) {
  StartServer();
  Client c(port_);
  const std::string request = "get a b\r\nversion\r\n";
  for (char ch : request) {
    c.Send(std::string(1, ch));
    std::this_thread::sleep_for(1ms);
  }
  const std::string reply = c.ReadUntilSuffix("VERSION 1.2.3\r\n");
  EXPECT_EQ(TextIds(reply).size(), 2u);

  Client b(port_);
  const std::string get = BinaryRequest(0x0c, 5, "key");
  for (char ch : get) {
    b.Send(std::string(1, ch));
    std::this_thread::sleep_for(1ms);
  }
  const std::string packet = b.ReadUntil([](const std::string& s) { return s.size() >= 24 && s.size() >= 24 + BodyLength(s); });
  ASSERT_GE(packet.size(), 31u);
  EXPECT_EQ(packet.substr(28, 3), "key");
}

TEST_F(MemcacheServerTest, UnixSocket) {
  const std::string path = ::testing::TempDir() + "katsubushi-test-" + std::to_string(::getpid()) + ".sock";
  ServerOptions options;
  options.unix_socket_path = path;
  StartServer(options);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  Client c(AF_UNIX, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ASSERT_TRUE(c.connected());
  c.Send("get u\r\n");
  EXPECT_EQ(TextIds(c.ReadUntilSuffix("END\r\n")).size(), 1u);
  server_->Stop(2s);
  server_.reset();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket file left behind";
}

TEST_F(MemcacheServerTest, Ipv6Loopback) {
  ServerOptions options;
  options.tcp_address = "::1";
  // Hosts without IPv6 cannot bind ::1; that is not a failure of ours.
  GeneratorOptions g;
  g.worker_id = kWorker;
  generator_ = std::move(GeneratorCore::Create(SystemClock::Instance(), g)).value();
  context_ = std::make_unique<memcache::ServiceContext>(memcache::ServiceContext{*generator_, stats_, "1.2.3"});
  options.tcp_port = 0;
  server_ = std::make_unique<MemcacheServer>(*context_, options);
  if (server_->Start()) GTEST_SKIP() << "no IPv6 loopback here";
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(server_->tcp_port());
  addr.sin6_addr = in6addr_loopback;
  Client c(AF_INET6, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ASSERT_TRUE(c.connected());
  c.Send("get v6\r\n");
  EXPECT_EQ(TextIds(c.ReadUntilSuffix("END\r\n")).size(), 1u);
}

TEST_F(MemcacheServerTest, IdleTimeoutClosesQuietConnections) {
  ServerOptions options;
  options.idle_timeout = 300ms;
  StartServer(options);
  Client active(port_);
  Client idle(port_);
  const auto start = std::chrono::steady_clock::now();
  // The active one keeps talking past the timeout and stays open.
  for (int i = 0; i < 6; ++i) {
    active.Send("version\r\n");
    EXPECT_EQ(active.ReadUntilSuffix("\r\n"), "VERSION 1.2.3\r\n");
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(idle.WaitClosed(2s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  active.Send("version\r\n");
  EXPECT_EQ(active.ReadUntilSuffix("\r\n"), "VERSION 1.2.3\r\n");
}

// A client that completes one `request` and then trickles `partial` one
// byte every kTricklePeriod, never finishing it: the server must close it one
// idle timeout after the completed request, as if it had sent nothing since.
// Runs on its own thread so the four clients of the test below share 2.5 s.
constexpr auto kTricklePeriod = 250ms;
constexpr auto kIdleTimeout = 1000ms;
// How late past the deadline the close may be seen: timer and thread wake-ups
// on a loaded machine. Counting bytes, the server would never close at all.
constexpr auto kCloseMargin = 400ms;

void ExpectTrickleClosedAtTheTimeout(uint16_t port, std::string request, size_t reply_size,
                                     std::string partial) {
  Client c(port);
  const auto sent = std::chrono::steady_clock::now();
  c.Send(request);
  ASSERT_EQ(c.ReadBytes(reply_size).size(), reply_size);
  const auto answered = std::chrono::steady_clock::now();
  for (char byte : partial) {
    c.Send(std::string(1, byte));
    if (c.WaitClosed(kTricklePeriod)) {
      const auto closed = std::chrono::steady_clock::now();
      // Not before the timeout (the server's clock started at the request at
      // the earliest), and not much after it.
      EXPECT_GE(closed - sent, kIdleTimeout);
      EXPECT_LE(closed - answered, kIdleTimeout + kCloseMargin);
      return;
    }
    if (std::chrono::steady_clock::now() - answered > kIdleTimeout + kCloseMargin) break;
  }
  ADD_FAILURE() << "a connection trickling a partial command was not closed at the idle timeout";
}

// Completes `request` every kTricklePeriod for 2.5 idle timeouts: stays open.
void ExpectCompletingClientStaysOpen(uint16_t port, std::string request, size_t reply_size) {
  Client c(port);
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < kIdleTimeout * 5 / 2) {
    c.Send(request);
    ASSERT_EQ(c.ReadBytes(reply_size).size(), reply_size) << "closed although it completed commands";
    std::this_thread::sleep_for(kTricklePeriod);
  }
}

TEST_F(MemcacheServerTest, IdleTimeoutCountsCompletedCommandsNotBytes) {
  ServerOptions options;
  options.idle_timeout = kIdleTimeout;
  StartServer(options);
  const std::string binary_noop = BinaryRequest(0x0a, 1);
  std::vector<std::thread> clients;
  clients.emplace_back(ExpectTrickleClosedAtTheTimeout, port_, "version\r\n",
                       std::string("VERSION 1.2.3\r\n").size(), "get " + std::string(100, 'k'));
  clients.emplace_back(ExpectTrickleClosedAtTheTimeout, port_, binary_noop, memcache::kBinaryHeaderSize,
                       BinaryRequest(0x00, 2, "key"));
  clients.emplace_back(ExpectCompletingClientStaysOpen, port_, "mn\r\n", 4);
  clients.emplace_back(ExpectCompletingClientStaysOpen, port_, binary_noop, memcache::kBinaryHeaderSize);
  for (std::thread& t : clients) t.join();
}

// A get's body is its key: a header announcing more is answered before any
// body is sent (it used to wait for up to a megabyte), then closed.
TEST_F(MemcacheServerTest, OversizedBinaryGetIsRefusedAtTheHeader) {
  StartServer();
  for (const uint32_t body : {uint32_t{memcache::kMaxBinaryGetBody + 1}, uint32_t{memcache::kMaxBinaryBody}}) {
    Client c(port_);
    c.Send(BinaryRequest(0x0d, 0x0a0b0c0d, "", body));  // the 24-byte header alone
    const std::string reply = c.ReadBytes(memcache::kBinaryHeaderSize + std::string("Body too large").size(), 2s);
    EXPECT_EQ(reply, std::string("\x81\x0d\0\0\0\0\x00\x04\0\0\0\x0e\x0a\x0b\x0c\x0d\0\0\0\0\0\0\0\0"
                                 "Body too large", 38))
        << "body length " << body;
    EXPECT_TRUE(c.WaitClosed(2s));
  }
  ExpectServerHealthy();
}

TEST_F(MemcacheServerTest, MaxConnections) {
  ServerOptions options;
  options.max_connections = 3;
  StartServer(options);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Client>(port_));
    held.back()->Send("version\r\n");
    ASSERT_EQ(held.back()->ReadUntilSuffix("\r\n"), "VERSION 1.2.3\r\n");
  }
  Client over(port_);
  EXPECT_TRUE(over.WaitClosed(2s));
  EXPECT_EQ(server_->rejected_connections(), 1u);
  held.pop_back();
  // A slot is free again once the server has seen the close.
  for (int attempt = 0; attempt < 50 && server_->open_connections() >= 3; ++attempt) {
    std::this_thread::sleep_for(20ms);
  }
  ExpectServerHealthy();
}

TEST_F(MemcacheServerTest, BadInputLeavesTheServerHealthyAndBounded) {
  StartServer();
  ExpectServerHealthy();
  const size_t rss_before = RssKib();
  {
    Client c(port_);  // 1 MiB line without newline
    const std::string junk(1 << 20, 'x');
    c.Send(junk);
    EXPECT_EQ(c.ReadUntilSuffix("\r\n"), "CLIENT_ERROR line too long\r\n");
    c.Send("\r\nget ok\r\n");
    EXPECT_EQ(TextIds(c.ReadUntilSuffix("END\r\n")).size(), 1u);
  }
  {
    Client c(port_);  // 100,000 keys
    std::string line = "get";
    for (int i = 0; i < 100'000; ++i) line += " k";
    c.Send(line + "\r\n");
    EXPECT_EQ(c.ReadUntilSuffix("\r\n"), "CLIENT_ERROR line too long\r\n");
  }
  {
    Client c(port_);  // binary body length 0xFFFFFFFF
    c.Send(BinaryRequest(0x00, 1, "", 0xFFFFFFFFu));
    const std::string reply = c.ReadBytes(24 + 14);
    ASSERT_GE(reply.size(), 8u);
    EXPECT_EQ(reply[7], '\x04');
    EXPECT_TRUE(c.WaitClosed());
  }
  std::mt19937 rng(1122);
  for (int i = 0; i < 20; ++i) {
    Client c(port_);  // random bytes
    std::string noise(64 * 1024, '\0');
    for (char& ch : noise) ch = static_cast<char>(rng());
    c.Send(noise);
    c.ReadUntil([](const std::string&) { return false; }, 50ms);
  }
  ExpectServerHealthy();
  EXPECT_LT(RssKib(), rss_before + 32 * 1024) << "RSS grew by more than 32 MiB";
}

TEST_F(MemcacheServerTest, TwoThousandConnectionsAtOnce) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 4500) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 4500);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < 4500) GTEST_SKIP() << "RLIMIT_NOFILE too low: " << lim.rlim_cur;
  StartServer();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 2000; ++i) clients.push_back(std::make_unique<Client>(port_));
  for (auto& c : clients) ASSERT_TRUE(c->connected());
  for (auto& c : clients) c->Send("get x\r\n");
  std::set<uint64_t> ids;
  for (auto& c : clients) {
    for (uint64_t id : TextIds(c->ReadUntilSuffix("END\r\n"))) ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 2000u);
  ExpectServerHealthy();
}

TEST_F(MemcacheServerTest, TwoHundredThousandIdsOverEightMixedConnectionsAllDistinct) {
  StartServer();
  constexpr int kConnections = 8;
  constexpr int kPerConnection = 25'000;
  std::vector<std::vector<uint64_t>> got(kConnections);
  std::vector<std::thread> threads;
  for (int t = 0; t < kConnections; ++t) {
    threads.emplace_back([&, t] {
      Client c(port_);
      std::vector<uint64_t>& ids = got[t];
      if (t % 2 == 0) {  // text, 10 keys per get, 50 gets per batch
        std::string batch;
        for (int i = 0; i < 50; ++i) batch += "get a b c d e f g h i j\r\n";
        while (static_cast<int>(ids.size()) < kPerConnection) {
          c.Send(batch);
          const std::string reply = c.ReadUntil([](const std::string& b) {
            size_t n = 0, pos = 0;
            while ((pos = b.find("END\r\n", pos)) != std::string::npos) ++n, pos += 5;
            return n == 50;
          });
          const auto batch_ids = TextIds(reply);
          if (batch_ids.size() != 500) return;
          ids.insert(ids.end(), batch_ids.begin(), batch_ids.end());
        }
      } else {  // binary GETKQ x 99 + GETK, pipelined
        std::string batch;
        for (int i = 0; i < 99; ++i) batch += BinaryRequest(0x0d, i, "q");
        batch += BinaryRequest(0x0c, 99, "k");
        while (static_cast<int>(ids.size()) < kPerConnection) {
          c.Send(batch);
          const std::string reply = c.ReadUntil([](const std::string& b) {
            size_t pos = 0, n = 0;
            while (pos + 24 <= b.size() && pos + 24 + BodyLength(b, pos) <= b.size()) {
              pos += 24 + BodyLength(b, pos);
              ++n;
            }
            return n == 100;
          });
          size_t pos = 0;
          while (pos + 24 <= reply.size()) {
            const uint32_t body = BodyLength(reply, pos);
            ids.push_back(std::stoull(reply.substr(pos + 24 + 4 + 1, body - 5)));
            pos += 24 + body;
          }
          if (pos != reply.size()) return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<uint64_t> all;
  for (const auto& ids : got) {
    EXPECT_GE(ids.size(), size_t{kPerConnection});
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    all.insert(all.end(), ids.begin(), ids.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate ID";
  EXPECT_GE(all.size(), 200'000u);
  for (uint64_t id : all) ASSERT_EQ(kLayout.WorkerIdOf(id), kWorker);
}

TEST_F(MemcacheServerTest, ConnectionsAreCountedUnderTheirProtocol) {
  StartServer();
  const auto text = static_cast<size_t>(FrontLabel::kMemcacheText);
  const auto binary = static_cast<size_t>(FrontLabel::kMemcacheBinary);
  auto connections = [&](size_t front) { return stats_.Snapshot().curr_connections_by_front[front]; };
  {
    Client b(port_);
    b.Send(BinaryRequest(0x00, 1, "k"));
    b.ReadUntil([](const std::string& r) { return r.size() >= 24 && r.size() >= 24 + BodyLength(r); });
    Client t(port_);
    t.Send("get k\r\n");
    t.ReadUntil([](const std::string& r) { return r.ends_with("END\r\n"); });
    const StatsSnapshot s = stats_.Snapshot();
    EXPECT_EQ(s.curr_connections_by_front[binary], 1u);
    EXPECT_EQ(s.curr_connections_by_front[text], 1u);
    EXPECT_EQ(s.total_connections_by_front[binary], 1u);
    EXPECT_EQ(s.total_connections_by_front[text], 1u);
    EXPECT_EQ(s.curr_connections, 2u);
  }
  // Closed under the label they were counted under: nothing goes negative.
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while ((connections(text) != 0 || connections(binary) != 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(connections(text), 0u);
  EXPECT_EQ(connections(binary), 0u);
  EXPECT_EQ(stats_.Snapshot().total_connections, 2u);
}

TEST_F(MemcacheServerTest, StopClosesIdleConnectionsAtOnce) {
  StartServer();
  Client text(port_);
  text.Send("get k\r\n");
  text.ReadUntil([](const std::string& r) { return r.ends_with("END\r\n"); });
  Client partial(port_);
  partial.Send("get k");  // no complete command: idle too
  Client binary(port_);
  binary.Send(BinaryRequest(0x00, 1, "k"));
  binary.ReadUntil([](const std::string& r) { return r.size() >= 24 && r.size() >= 24 + BodyLength(r); });
  const auto start = std::chrono::steady_clock::now();
  server_->Stop(5s);
  // Nothing was in flight: no waiting for the 5 s deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);
}

TEST_F(MemcacheServerTest, StopAnswersInFlightAndReturnsPromptly) {
  StartServer();
  Client c(port_);
  std::string batch;
  for (int i = 0; i < 200; ++i) batch += "get a b c d e f g h\r\n";
  c.Send(batch);
  const auto start = std::chrono::steady_clock::now();
  server_->Stop(2s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms);
  // Whatever was answered is whole replies; then the connection is closed.
  const std::string reply = c.ReadUntil([](const std::string&) { return false; }, 500ms);
  if (!reply.empty()) {
    EXPECT_TRUE(reply.ends_with("END\r\n"));
  }
  server_.reset();
  Client after(port_);
  EXPECT_FALSE(after.connected());
}

}  // namespace
}  // namespace katsubushi::memcache
