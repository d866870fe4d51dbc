// katsubushi::Client from many threads against in-process servers (memcached
// front and HTTP front) on 127.0.0.1: the pool, the backoff and the parsers
// shared by threads (this is the test TSan sees), and IDs that are unique and
// increasing per thread.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http/http_server.h"
#include "katsubushi/client/client.h"
#include "katsubushi/client/reply.h"
#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"
#include "memcache/memcache_server.h"

namespace katsubushi {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kWorker = 88;
constexpr int kThreads = 8;
constexpr int kCallsPerThread = 300;

// A 127.0.0.1 port that refuses connections: bound, never listened on, and
// held for the test so that nothing else takes it.
class RefusedPort {
 public:
  RefusedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t length = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &length);
    port_ = ntohs(a.sin_port);
  }
  ~RefusedPort() { ::close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class ClientServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GeneratorOptions g;
    g.worker_id = kWorker;
    generator_ = std::move(GeneratorCore::Create(SystemClock::Instance(), g)).value();
    memcache_context_ = std::make_unique<memcache::ServiceContext>(
        memcache::ServiceContext{*generator_, stats_, "1.2.3"});
    memcache::ServerOptions m;
    m.tcp_address = "127.0.0.1";
    m.tcp_port = 0;
    m.threads = 2;
    memcache_ = std::make_unique<memcache::MemcacheServer>(*memcache_context_, m);
    ASSERT_FALSE(memcache_->Start());
    http_context_ = std::make_unique<http::HttpContext>(http::HttpContext{*generator_, stats_, "1.2.3", {}, {}, {}});
    http::HttpOptions h;
    h.address = "127.0.0.1";
    h.port = 0;
    h.threads = 2;
    http_ = std::make_unique<http::HttpServer>(*http_context_, h);
    ASSERT_FALSE(http_->Start());
  }
  void TearDown() override {
    if (http_) http_->Stop(2s);
    if (memcache_) memcache_->Stop(2s);
  }
  std::string MemcacheAddress() const { return "127.0.0.1:" + std::to_string(memcache_->tcp_port()); }
  std::string HttpAddress() const { return "http://127.0.0.1:" + std::to_string(http_->port()); }

  // Calls from kThreads threads at once; every ID unique, each thread's increasing.
  void ExpectConcurrentFetches(const std::vector<std::string>& servers) {
    ClientOptions options;
    options.servers = servers;
    options.timeout = 10s;
    options.attempt_timeout = 5s;
    auto client = Client::Open(options);
    ASSERT_TRUE(client.ok());
    std::vector<std::vector<uint64_t>> got(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kCallsPerThread && errors[t].empty(); ++i) {
          std::string why;
          if (i % 10 == 0) {
            uint64_t ids[50];
            if (!(*client)->FetchMulti(ids, &why).ok()) errors[t] = why;
            got[t].insert(got[t].end(), std::begin(ids), std::end(ids));
          } else {
            Result<uint64_t> id = (*client)->Fetch(&why);
            if (!id.ok()) errors[t] = why;
            got[t].push_back(id.ok() ? *id : 0);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    std::set<uint64_t> all;
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(errors[t], "");
      EXPECT_TRUE(std::is_sorted(got[t].begin(), got[t].end()));
      for (uint64_t id : got[t]) {
        EXPECT_EQ(IdLayout::Default().WorkerIdOf(id), kWorker);
        EXPECT_TRUE(all.insert(id).second) << "duplicate " << id;
      }
    }
  }

  Stats stats_;
  std::unique_ptr<GeneratorCore> generator_;
  std::unique_ptr<memcache::ServiceContext> memcache_context_;
  std::unique_ptr<memcache::MemcacheServer> memcache_;
  std::unique_ptr<http::HttpContext> http_context_;
  std::unique_ptr<http::HttpServer> http_;
};

TEST_F(ClientServerTest, ManyThreadsOverMemcache) { ExpectConcurrentFetches({MemcacheAddress()}); }

TEST_F(ClientServerTest, ManyThreadsOverHttp) { ExpectConcurrentFetches({HttpAddress()}); }

TEST_F(ClientServerTest, ManyThreadsFailingOverFromARefusedPort) {
  RefusedPort refused;
  ExpectConcurrentFetches({refused.address(), MemcacheAddress()});
}

TEST_F(ClientServerTest, ConnectionsAreReused) {
  ClientOptions options;
  options.servers = {MemcacheAddress(), HttpAddress()};
  auto client = Client::Open(options);
  ASSERT_TRUE(client.ok());
  const uint64_t before = stats_.Snapshot().total_connections;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*client)->Fetch().ok());
  EXPECT_EQ(stats_.Snapshot().total_connections - before, 1u);
}

// An http:// address that points at a memcached port fails at the first byte
// of the reply (memcached's "VALUE"), not when the attempt times out.
TEST_F(ClientServerTest, AnHttpAddressOnAMemcachedPortFailsAtOnce) {
  ClientOptions options;
  options.servers = {"http://" + MemcacheAddress()};
  options.timeout = 10s;
  options.attempt_timeout = 5s;
  auto client = Client::Open(options);
  ASSERT_TRUE(client.ok());
  std::string why;
  const auto start = std::chrono::steady_clock::now();
  const Result<uint64_t> id = (*client)->Fetch(&why);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(id.status().message(), client::kNotHttp.message()) << why;
  EXPECT_LT(took, 1s) << why;
}

}  // namespace
}  // namespace katsubushi
