// The HTTP front over real sockets: in-process server on 127.0.0.1, port 0.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "http/http_server.h"
#include "katsubushi/clock.h"
#include "test_client.h"

namespace katsubushi::http {
namespace {

using namespace std::chrono_literals;
using katsubushi::testing::Client;

constexpr uint32_t kWorker = 44;

// Reads one whole response (headers + Content-Length body) off `c`.
std::string ReadResponse(Client& c, std::chrono::milliseconds timeout = 5s) {
  std::string got;
  auto complete = [](const std::string& b) {
    const size_t end = b.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const size_t cl = b.find("Content-Length: ");
    const size_t length = cl == std::string::npos || cl > end ? 0 : std::stoul(b.substr(cl + 16));
    return b.size() >= end + 4 + length;
  };
  return c.ReadUntil(complete, timeout);
}

std::string Body(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpOptions options = {}) {
    GeneratorOptions g;
    g.worker_id = kWorker;
    generator_ = std::move(GeneratorCore::Create(SystemClock::Instance(), g)).value();
    context_ = std::make_unique<HttpContext>(HttpContext{*generator_, stats_, "1.2.3", {}, {}, {}});
    options.address = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    server_ = std::make_unique<HttpServer>(*context_, options);
    ASSERT_FALSE(server_->Start());
  }
  void TearDown() override {
    if (server_) server_->Stop(2s);
  }
  void ExpectHealthy() {
    Client c(server_->port());
    ASSERT_TRUE(c.connected());
    c.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string r = ReadResponse(c);
    ASSERT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
    EXPECT_EQ(IdLayout::Default().WorkerIdOf(std::stoull(Body(r))), kWorker);
  }

  Stats stats_;
  std::unique_ptr<GeneratorCore> generator_;
  std::unique_ptr<HttpContext> context_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, RoutesOverASocket) {
  Start();
  Client c(server_->port());
  c.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = ReadResponse(c);
  EXPECT_NE(r.find("Content-Type: text/plain\r\n"), std::string::npos) << r;
  EXPECT_EQ(IdLayout::Default().WorkerIdOf(std::stoull(Body(r))), kWorker);

  c.Send("GET /ids?n=3 HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n");
  r = ReadResponse(c);
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos) << r;
  EXPECT_EQ(Body(r).rfind("{\"ids\":[\"", 0), 0u) << r;

  c.Send("POST /id HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(ReadResponse(c).rfind("HTTP/1.1 405 ", 0), 0u);
  c.Send("GET /ids?n=0 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ReadResponse(c).rfind("HTTP/1.1 400 ", 0), 0u);
  c.Send("GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
  r = ReadResponse(c);
  EXPECT_NE(Body(r).find("\"curr_connections\": 1,"), std::string::npos) << r;
  c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Body(ReadResponse(c)), "ok\n");
}

TEST_F(HttpServerTest, KeepAliveThousandRequestsOnOneConnection) {
  Start();
  Client c(server_->port());
  std::set<uint64_t> ids;
  for (int i = 0; i < 1000; ++i) {
    c.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string r = ReadResponse(c);
    ASSERT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << i << r;
    ids.insert(std::stoull(Body(r)));
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(stats_.Snapshot().total_connections, 1u);
}

TEST_F(HttpServerTest, PipelinedRequestsAnsweredInOrder) {
  Start();
  Client c(server_->port());
  std::string batch;
  for (int i = 0; i < 50; ++i) batch += "GET /ids?n=2 HTTP/1.1\r\nHost: x\r\n\r\n";
  c.Send(batch);
  const std::string all = c.ReadUntil([](const std::string& b) {
    size_t n = 0, pos = 0;
    while ((pos = b.find("HTTP/1.1 200 OK", pos)) != std::string::npos) ++n, ++pos;
    return n == 50 && b.ends_with(b.substr(b.rfind("\r\n\r\n") + 4));
  });
  size_t responses = 0, pos = 0;
  while ((pos = all.find("HTTP/1.1 200 OK", pos)) != std::string::npos) ++responses, ++pos;
  EXPECT_EQ(responses, 50u);
}

TEST_F(HttpServerTest, HttpOneZeroClosesAfterTheResponse) {
  Start();
  Client c(server_->port());
  c.Send("GET /id HTTP/1.0\r\n\r\n");
  EXPECT_EQ(ReadResponse(c).rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
  EXPECT_TRUE(c.WaitClosed(2s));
}

TEST_F(HttpServerTest, MalformedRequestLineIs400AndServerUnharmed) {
  Start();
  for (const char* junk : {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "\x01\x02\x03\r\n\r\n",
                           "get /id http/1.1\r\n\r\n"}) {
    Client c(server_->port());
    c.Send(junk);
    const std::string r = ReadResponse(c, 2s);
    EXPECT_EQ(r.rfind("HTTP/1.1 400 ", 0), 0u) << junk << " -> " << r;
    EXPECT_TRUE(c.WaitClosed(2s));
  }
  ExpectHealthy();
}

TEST_F(HttpServerTest, HugeHeaderIs431AndServerUnharmed) {
  Start();
  Client c(server_->port());
  c.Send("GET /id HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n");
  const std::string r = ReadResponse(c, 3s);
  EXPECT_EQ(r.rfind("HTTP/1.1 431 ", 0), 0u) << r.substr(0, 100);
  ExpectHealthy();
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413) {
  Start();
  Client c(server_->port());
  c.Send("GET /id HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'b'));
  EXPECT_EQ(ReadResponse(c, 3s).rfind("HTTP/1.1 413 ", 0), 0u);
  ExpectHealthy();
}

TEST_F(HttpServerTest, SlowlorisIsCutOffByTheRequestTimeout) {
  HttpOptions options;
  options.request_timeout = 300ms;
  Start(options);
  Client slow(server_->port());
  const auto start = std::chrono::steady_clock::now();
  const std::string request = "GET /id HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  bool closed = false;
  for (char ch : request) {  // one byte per 50 ms: 3 s for the whole request
    slow.Send(std::string(1, ch));
    if (slow.WaitClosed(50ms)) {
      closed = true;
      break;
    }
  }
  EXPECT_TRUE(closed) << "a trickling client held its connection";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  ExpectHealthy();
}

// The wait for the next request follows the idle timeout, not the request
// timeout (a load balancer's idle connections outlive 30 s).
TEST_F(HttpServerTest, IdleKeepAliveIsClosedByTheIdleTimeout) {
  HttpOptions options;
  options.request_timeout = 300ms;
  options.idle_timeout = 1500ms;
  Start(options);
  Client c(server_->port());
  c.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResponse(c);
  const auto idle_since = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.WaitClosed(1000ms)) << "closed by the request timeout";
  EXPECT_TRUE(c.WaitClosed(2s));
  EXPECT_GE(std::chrono::steady_clock::now() - idle_since, 1400ms);
}

TEST_F(HttpServerTest, MaxConnections) {
  HttpOptions options;
  options.max_connections = 2;
  Start(options);
  Client a(server_->port()), b(server_->port());
  a.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
  b.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResponse(a);
  ReadResponse(b);
  Client over(server_->port());
  EXPECT_TRUE(over.WaitClosed(2s));
  EXPECT_EQ(server_->rejected_connections(), 1u);
}

TEST_F(HttpServerTest, StopClosesKeepAliveConnectionsPromptly) {
  Start();
  Client c(server_->port());
  c.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResponse(c);
  const auto start = std::chrono::steady_clock::now();
  server_->Stop(2s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(c.WaitClosed(1s));
}

}  // namespace
}  // namespace katsubushi::http
