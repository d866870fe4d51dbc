// The gRPC front with a real C++ client over 127.0.0.1.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "grpc/grpc_server.h"
#include "grpc_test_backend.h"
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
    generator_ = katsubushi::Generator::NewStub(channel);
    stats_ = katsubushi::Stats::NewStub(channel);
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
};

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

}  // namespace
}  // namespace katsubushi::grpc_api
