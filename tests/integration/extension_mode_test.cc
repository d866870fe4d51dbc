// The Lambda extension mode run in-process (RunExtension on a thread of the
// test) against a fake Extensions API and a real redis-server: it registers,
// takes INVOKE (leasing a worker id), serves an ID over memcached on its unix
// socket, and on SHUTDOWN gives the worker id back and returns 0.
//
// The fake is a small Beast HTTP server written from AWS's published
// Extensions API contract (docs.aws.amazon.com/lambda/latest/dg/
// runtimes-extensions-api.html), as tests/e2e/fake_lambda.py is:
//   POST /2020-01-01/extension/register  Lambda-Extension-Name, {"events":[...]}
//        -> 200, Lambda-Extension-Identifier
//   GET  /2020-01-01/extension/event/next  Lambda-Extension-Identifier
//        -> 200 {"eventType":"INVOKE"|"SHUTDOWN",...} when there is one (long poll);
//        an unknown identifier -> 403
//   POST /2020-01-01/extension/init/error, .../exit/error -> 202
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "katsubushi/client/client.h"
#include "katsubushi/config.h"
#include "katsubushi/lease/raus_protocol.h"
#include "redis_server.h"
#include "run_extension.h"

namespace katsubushi {
namespace {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using asio::ip::tcp;
using namespace std::chrono_literals;

constexpr char kExtensionPath[] = "/2020-01-01/extension";
constexpr char kIdentifier[] = "4f6c8a2e-0d3b-4c1e-9a57-ext-test";
constexpr char kNs[] = "extension_test";

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class FakeExtensionsApi {
 public:
  FakeExtensionsApi() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~FakeExtensionsApi() { Close(); }

  std::string api() const { return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }

  void Queue(std::string event_json) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(event_json));
    cv_.notify_all();
  }
  // Waits until the extension has asked for its `n`-th event (it is idle
  // after each request, as Lambda sees it before freezing the environment).
  bool WaitForNextCalls(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return next_calls_ >= n; });
  }
  std::string registered_name() {
    std::lock_guard lock(mu_);
    return registered_name_;
  }
  std::string registered_events() {
    std::lock_guard lock(mu_);
    return registered_events_;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }
  // Ends every long poll with a 500 and stops serving.
  void Close() {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = true;
      cv_.notify_all();
    }
    // A blocked accept() is not woken by close(2): wake it with a connection.
    boost::system::error_code ignored;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ignored);
    accept_thread_.join();
    acceptor_.close(ignored);
    for (std::thread& t : connections_) t.join();
  }

 private:
  void AcceptLoop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      std::lock_guard lock(mu_);
      if (closed_) return;
      connections_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }

  void Serve(tcp::socket socket) {
    boost::beast::flat_buffer buffer;
    for (;;) {
      beast_http::request<beast_http::string_body> request;
      boost::system::error_code ec;
      beast_http::read(socket, buffer, request, ec);
      if (ec) return;
      beast_http::response<beast_http::string_body> response = Handle(request);
      response.version(11);
      response.set(beast_http::field::content_type, "application/json");
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      beast_http::write(socket, response, ec);
      if (ec || !request.keep_alive()) return;
    }
  }

  beast_http::response<beast_http::string_body> Handle(
      const beast_http::request<beast_http::string_body>& request) {
    beast_http::response<beast_http::string_body> response;
    const std::string target(request.target());
    const std::string identifier(request["Lambda-Extension-Identifier"]);
    if (request.method() == beast_http::verb::post && target == std::string(kExtensionPath) + "/register") {
      std::lock_guard lock(mu_);
      registered_name_ = std::string(request["Lambda-Extension-Name"]);
      registered_events_ = request.body();
      response.result(beast_http::status::ok);
      response.set("Lambda-Extension-Identifier", kIdentifier);
      response.body() = R"({"functionName":"kb-test","functionVersion":"$LATEST","handler":"bootstrap"})";
      return response;
    }
    if (identifier != kIdentifier) {
      response.result(beast_http::status::forbidden);
      response.body() = R"({"errorMessage":"unknown extension identifier","errorType":"Extension.Forbidden"})";
      return response;
    }
    if (request.method() == beast_http::verb::get && target == std::string(kExtensionPath) + "/event/next") {
      std::unique_lock lock(mu_);
      ++next_calls_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return closed_ || !events_.empty(); });
      if (events_.empty()) {
        response.result(beast_http::status::internal_server_error);
        response.body() = R"({"errorMessage":"shutting down"})";
        return response;
      }
      response.result(beast_http::status::ok);
      response.set("Lambda-Extension-Event-Identifier", "event-" + std::to_string(next_calls_));
      response.body() = std::move(events_.front());
      events_.pop_front();
      return response;
    }
    if (request.method() == beast_http::verb::post &&
        (target == std::string(kExtensionPath) + "/init/error" ||
         target == std::string(kExtensionPath) + "/exit/error")) {
      std::lock_guard lock(mu_);
      errors_.push_back(target + " " + std::string(request["Lambda-Extension-Function-Error-Type"]));
      response.result(beast_http::status::accepted);
      response.body() = R"({"status":"OK"})";
      return response;
    }
    response.result(beast_http::status::not_found);
    return response;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> events_;        // guarded by mu_
  int next_calls_ = 0;                    // guarded by mu_
  std::string registered_name_;           // guarded by mu_
  std::string registered_events_;         // guarded by mu_
  std::vector<std::string> errors_;       // guarded by mu_
  bool closed_ = false;                   // guarded by mu_
  std::vector<std::thread> connections_;  // guarded by mu_ until Close joins them
};

class ExtensionModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.Ready()) << "redis-server did not start";
    dir_ = std::filesystem::temp_directory_path() / ("extension_mode_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  bool LockHeld(uint32_t worker_id) {
    redis::RedisClient admin(redis_.ClientOptions(kNs));
    redis::RedisReply reply;
    EXPECT_TRUE(admin.Run({}, {"EXISTS", lease::LockKey(kNs, worker_id)}, &reply));
    return reply.integer == 1;
  }

  lease::RedisServer redis_;
  std::filesystem::path dir_;
};

TEST_F(ExtensionModeTest, ServesAnIdBetweenInvokeAndShutdownThenReleasesAndExitsZero) {
  const std::string sock = (dir_ / "kb.sock").string();
  const std::string redis_flag = "-redis=" + redis_.UrlText(kNs);
  const std::string sock_flag = "-sock=" + sock;
  const std::vector<std::string_view> args = {redis_flag, sock_flag, "-http-port=0",
                                              "-min-worker-id=40", "-max-worker-id=41"};
  const ConfigResult parsed = ParseConfig(args, [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(parsed.ok()) << parsed.error;

  FakeExtensionsApi fake;
  fake.Queue(R"({"eventType":"INVOKE","deadlineMs":)" + std::to_string(UnixMillis() + 30000) +
             R"(,"requestId":"req-1","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:kb-test"})");
  std::future<int> exit_code = std::async(std::launch::async, [&] {
    return RunExtension(parsed.config, "", fake.api(), "/opt/extensions/katsubushi");
  });
  // Registered, took INVOKE (the lease) and waits for the next event.
  ASSERT_TRUE(fake.WaitForNextCalls(2, 15s)) << "the extension did not finish its INVOKE";
  EXPECT_EQ(fake.registered_name(), "katsubushi");
  EXPECT_EQ(fake.registered_events(), R"({"events":["INVOKE","SHUTDOWN"]})");

  ClientOptions options;
  options.servers = {"unix:" + sock};
  auto client = Client::Open(options);
  ASSERT_TRUE(client.ok());
  std::string why;
  const Result<uint64_t> id = (*client)->Fetch(&why);
  ASSERT_TRUE(id.ok()) << why;
  const uint32_t worker_id = static_cast<uint32_t>((*id >> 12) & 0x3FF);
  EXPECT_TRUE(worker_id == 40 || worker_id == 41) << worker_id;
  EXPECT_TRUE(LockHeld(worker_id));

  fake.Queue(R"({"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":)" +
             std::to_string(UnixMillis() + 2000) + "}");
  if (exit_code.wait_for(5s) != std::future_status::ready) {
    fake.Close();  // ends its long poll, so the thread can be joined
    FAIL() << "SHUTDOWN did not end the extension within 5 s";
  }
  EXPECT_EQ(exit_code.get(), 0);
  EXPECT_FALSE(LockHeld(worker_id)) << "the worker id was not given back";
  EXPECT_TRUE(fake.errors().empty());
  EXPECT_FALSE(std::filesystem::exists(sock)) << "the unix socket was left behind";
}

}  // namespace
}  // namespace katsubushi
