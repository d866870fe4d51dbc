// The gRPC front with a real C++ client over 127.0.0.1.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "grpc/grpc_server.h"
#include "grpc/health_service.h"
#include "grpc_test_backend.h"
#include "health.grpc.pb.h"
#include "katsubushi.grpc.pb.h"

namespace katsubushi::grpc_api {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kWorker = 55;

uint32_t WorkerOf(uint64_t id) { return static_cast<uint32_t>((id >> 12) & 1023); }

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test_backend_ = testing::MakeTestBackend(kWorker);
    GrpcOptions options;
    options.address = "127.0.0.1";
    server_ = std::make_unique<GrpcServer>(test_backend_->backend(), options);
    ASSERT_FALSE(server_->Start());
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                       grpc::InsecureChannelCredentials());
    channel_ = channel;
    generator_ = katsubushi::Generator::NewStub(channel);
    stats_ = katsubushi::Stats::NewStub(channel);
    health_ = grpc::health::v1::Health::NewStub(channel);
  }
  void TearDown() override { server_->Stop(2s); }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 5s);
    return c;
  }
  grpc::Status FetchMulti(uint32_t n, FetchMultiResponse* response) {
    FetchMultiRequest request;
    request.set_n(n);
    return generator_->FetchMulti(Context().get(), request, response);
  }

  std::unique_ptr<testing::TestBackend> test_backend_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<katsubushi::Generator::Stub> generator_;
  std::unique_ptr<katsubushi::Stats::Stub> stats_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::shared_ptr<grpc::Channel> channel_;
};

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

TEST_F(GrpcServerTest, Fetch) {
  FetchResponse a, b;
  ASSERT_TRUE(generator_->Fetch(Context().get(), FetchRequest(), &a).ok());
  ASSERT_TRUE(generator_->Fetch(Context().get(), FetchRequest(), &b).ok());
  EXPECT_EQ(WorkerOf(a.id()), kWorker);
  EXPECT_GT(b.id(), a.id());
}

TEST_F(GrpcServerTest, FetchMultiZeroOneThousandAndTooMany) {
  FetchMultiResponse r;
  ASSERT_TRUE(FetchMulti(0, &r).ok());
  EXPECT_EQ(r.ids_size(), 1);
  r.Clear();
  ASSERT_TRUE(FetchMulti(1, &r).ok());
  EXPECT_EQ(r.ids_size(), 1);
  r.Clear();
  ASSERT_TRUE(FetchMulti(1000, &r).ok());
  ASSERT_EQ(r.ids_size(), 1000);
  std::set<uint64_t> distinct(r.ids().begin(), r.ids().end());
  EXPECT_EQ(distinct.size(), 1000u);
  for (uint64_t id : r.ids()) EXPECT_EQ(WorkerOf(id), kWorker);
  EXPECT_TRUE(std::is_sorted(r.ids().begin(), r.ids().end()));
  r.Clear();
  const grpc::Status too_many = FetchMulti(1001, &r);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(too_many.error_message(), "too many IDs requested: 1001, n should be smaller than 1000");
}

TEST_F(GrpcServerTest, GeneratorFailureIsUnavailable) {
  FetchResponse r;
  ASSERT_TRUE(generator_->Fetch(Context().get(), FetchRequest(), &r).ok());
  test_backend_->StepClockBackSeconds(1);
  grpc::Status s = generator_->Fetch(Context().get(), FetchRequest(), &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "clock moved backwards");
  FetchMultiResponse m;
  EXPECT_EQ(FetchMulti(10, &m).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(m.ids_size(), 0);
  test_backend_->RestoreClock();
  EXPECT_TRUE(generator_->Fetch(Context().get(), FetchRequest(), &r).ok());
}

TEST_F(GrpcServerTest, StatsGet) {
  FetchMultiResponse m;
  ASSERT_TRUE(FetchMulti(5, &m).ok());
  FetchResponse f;
  ASSERT_TRUE(generator_->Fetch(Context().get(), FetchRequest(), &f).ok());
  StatsResponse s;
  ASSERT_TRUE(stats_->Get(Context().get(), StatsRequest(), &s).ok());
  EXPECT_EQ(s.pid(), ::getpid());
  EXPECT_EQ(s.version(), "4.5.6");
  EXPECT_EQ(s.cmd_get(), 2);
  EXPECT_EQ(s.get_hits(), 6);
  EXPECT_EQ(s.get_misses(), 0);
  EXPECT_GT(s.time(), 1'700'000'000);
}

TEST_F(GrpcServerTest, ConcurrentCallsAllDistinct) {
  constexpr int kThreads = 4;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        FetchMultiResponse r;
        if (!FetchMulti(100, &r).ok()) return;
        got[t].insert(got[t].end(), r.ids().begin(), r.ids().end());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  size_t total = 0;
  for (const auto& ids : got) {
    total += ids.size();
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(total, 20'000u);
  EXPECT_EQ(all.size(), total);
}

// Replies written in one batch are coalesced (reply_coalescer.h): none may be
// held past its batch. Rounds of a few concurrent calls on one connection
// are the case a reply left corked would show: the kernel would send it only
// after 200 ms, so 100 rounds would take 20 s instead of milliseconds.
TEST_F(GrpcServerTest, ConcurrentRepliesOnOneConnectionAreNotHeld) {
  constexpr int kRounds = 100;
  constexpr int kConcurrent = 8;
  grpc::CompletionQueue cq;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<FetchResponse> responses(kConcurrent);
    std::vector<grpc::Status> statuses(kConcurrent);
    std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<FetchResponse>>> readers;
    for (int i = 0; i < kConcurrent; ++i) {
      contexts.push_back(Context());
      readers.push_back(generator_->AsyncFetch(contexts.back().get(), FetchRequest(), &cq));
      readers.back()->Finish(&responses[i], &statuses[i], reinterpret_cast<void*>(intptr_t{i}));
    }
    for (int i = 0; i < kConcurrent; ++i) {
      void* tag = nullptr;
      bool ok = false;
      ASSERT_TRUE(cq.Next(&tag, &ok));
      ASSERT_TRUE(ok);
    }
    for (int i = 0; i < kConcurrent; ++i) ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Normally ~50 ms; generous for a loaded machine, and far below 20 s.
  EXPECT_LT(elapsed, 3s);
  cq.Shutdown();
}

// Requests are a few bytes: a large one is refused, not buffered.
TEST_F(GrpcServerTest, OversizedRequestIsRefused) {
  grpc::GenericStub stub(channel_);
  const std::string big(GrpcOptions::kMaxRequestBytes + 1, 'x');
  grpc::Slice slice(big);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 5s);
  stub.UnaryCall(&context, "/katsubushi.Generator/Fetch", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   std::lock_guard lock(mutex);
                   status = std::move(s);
                   done = true;
                   done_cv.notify_all();
                 });
  std::unique_lock lock(mutex);
  ASSERT_TRUE(done_cv.wait_for(lock, 5s, [&] { return done; }));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  FetchResponse r;
  EXPECT_TRUE(generator_->Fetch(Context().get(), FetchRequest(), &r).ok());
}

TEST_F(GrpcServerTest, HealthCheckNamesTheServerAndTheGenerator) {
  for (const char* service : {"", "katsubushi.Generator"}) {
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    ASSERT_TRUE(health_->Check(Context().get(), request, &response).ok()) << service;
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << service;
  }
  HealthCheckRequest unknown;
  unknown.set_service("nope.Nope");
  HealthCheckResponse response;
  EXPECT_EQ(health_->Check(Context().get(), unknown, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// NOT_SERVING while the backend cannot issue (go-katsubushi hard-wires SERVING),
// on Check and on an open Watch, and SERVING again after.
TEST_F(GrpcServerTest, HealthFollowsWhetherIdsCanBeIssued) {
  auto watch_context = Context();
  HealthCheckRequest request;
  auto watch = health_->Watch(watch_context.get(), request);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);

  test_backend_->SetHealthy(false);
  ASSERT_TRUE(watch->Read(&update));  // within one health poll interval
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  HealthCheckResponse checked;
  ASSERT_TRUE(health_->Check(Context().get(), request, &checked).ok());
  EXPECT_EQ(checked.status(), HealthCheckResponse::NOT_SERVING);

  test_backend_->SetHealthy(true);
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  watch_context->TryCancel();
}

// The stop ends every Watch at once, after a last NOT_SERVING.
TEST_F(GrpcServerTest, StopSendsNotServingAndEndsWatches) {
  auto watch_context = Context();
  auto watch = health_->Watch(watch_context.get(), HealthCheckRequest());
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  ASSERT_EQ(update.status(), HealthCheckResponse::SERVING);
  const auto start = std::chrono::steady_clock::now();
  std::jthread stopper([this] { server_->Stop(2s); });
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&update));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  stopper.join();
  // Nothing was in flight: no waiting for the 2 s deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
}

// Each Watch holds a thread of gRPC's: their number is bounded.
TEST_F(GrpcServerTest, WatchStreamsAreBounded) {
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<HealthCheckResponse>>> watches;
  for (int i = 0; i < HealthService::kMaxWatches; ++i) {
    contexts.push_back(Context());
    watches.push_back(health_->Watch(contexts.back().get(), HealthCheckRequest()));
    HealthCheckResponse update;
    ASSERT_TRUE(watches.back()->Read(&update)) << i;
  }
  auto extra_context = Context();
  auto extra = health_->Watch(extra_context.get(), HealthCheckRequest());
  HealthCheckResponse update;
  EXPECT_FALSE(extra->Read(&update));
  EXPECT_EQ(extra->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (auto& c : contexts) c->TryCancel();
}

}  // namespace
}  // namespace katsubushi::grpc_api
