// Includes the generated service headers: never the core's generator.h or
// stats.h (see backend.h).
#include "grpc/grpc_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "katsubushi.grpc.pb.h"
#include "katsubushi/limits.h"

namespace katsubushi::grpc_api {
namespace {

// How often Drain() looks whether the calls in flight are done. Unary calls
// here finish in microseconds; this bounds how long after the last one the
// idle channels are closed.
constexpr std::chrono::milliseconds kDrainPollInterval{2};

// The unary calls in flight, so the stop knows when only idle channels and
// streams that never end (health Watch, reflection) are left. Sequentially
// consistent: the stopping thread reads it to decide whether cancelling
// everything can cut off a call; one atomic add per call is nothing next to
// gRPC's own cost.
using CallCounter = std::atomic<int>;

// A unary call's reactor that counts the call as in flight until gRPC is
// done with it (its status sent), not merely until the handler returns.
class CountedReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CountedReactor(CallCounter& counter) : counter_(counter) { ++counter_; }
  void OnDone() override {
    --counter_;
    delete this;
  }

 private:
  CallCounter& counter_;
};

grpc::Status ToGrpc(const katsubushi::Status& s) {
  const std::string message(s.message());
  if (s.code() == StatusCode::kInvalidArgument) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
  }
  // Every other failure to issue is temporary (the clock, the lease).
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
}

class GeneratorService final : public katsubushi::Generator::CallbackService {
 public:
  GeneratorService(Backend& backend, CallCounter& calls) : backend_(backend), calls_(calls) {}

  grpc::ServerUnaryReactor* Fetch(grpc::CallbackServerContext*, const FetchRequest*,
                                  FetchResponse* response) override {
    grpc::ServerUnaryReactor* reactor = new CountedReactor(calls_);
    const Result<uint64_t> id = backend_.NextId();
    if (!id.ok()) {
      reactor->Finish(ToGrpc(id.status()));
      return reactor;
    }
    response->set_id(*id);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* FetchMulti(grpc::CallbackServerContext*,
                                       const FetchMultiRequest* request,
                                       FetchMultiResponse* response) override {
    grpc::ServerUnaryReactor* reactor = new CountedReactor(calls_);
    const uint32_t n = request->n() == 0 ? 1 : request->n();
    if (n > kMaxIdsPerRequest) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "too many IDs requested: " + std::to_string(n) +
                                       ", n should be smaller than " + std::to_string(kMaxIdsPerRequest)));
      return reactor;
    }
    auto* ids = response->mutable_ids();
    ids->Resize(static_cast<int>(n), 0);
    if (const katsubushi::Status s = backend_.NextIds(std::span<uint64_t>(ids->mutable_data(), n)); !s.ok()) {
      response->clear_ids();
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Backend& backend_;
  CallCounter& calls_;
};

class StatsService final : public katsubushi::Stats::CallbackService {
 public:
  StatsService(Backend& backend, CallCounter& calls) : backend_(backend), calls_(calls) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext*, const StatsRequest*,
                                StatsResponse* response) override {
    const StatsFields s = backend_.GetStats();
    response->set_pid(static_cast<int32_t>(s.pid));
    response->set_uptime(s.uptime);
    response->set_time(s.time);
    response->set_version(s.version);
    response->set_curr_connections(s.curr_connections);
    response->set_total_connections(s.total_connections);
    response->set_cmd_get(s.cmd_get);
    response->set_get_hits(s.get_hits);
    response->set_get_misses(s.get_misses);
    grpc::ServerUnaryReactor* reactor = new CountedReactor(calls_);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Backend& backend_;
  CallCounter& calls_;
};

}  // namespace

struct GrpcServer::Impl {
  Impl(Backend& b, GrpcOptions o)
      : backend(b), options(std::move(o)), generator(b, calls), stats(b, calls) {}

  // Keeps grpc.health.v1 in step with Backend::Health().
  void PollHealth() {
    std::unique_lock lock(mutex);
    bool last = false;
    bool first = true;
    while (!stopping) {
      const bool serving = backend.Health().ok();
      if (first || serving != last) {
        grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
        health->SetServingStatus(serving);  // every service, and the empty name
        health->SetServingStatus(katsubushi::Generator::service_full_name(), serving);
        last = serving;
        first = false;
      }
      wake.wait_for(lock, GrpcOptions::kHealthPollInterval, [this] { return stopping; });
    }
  }

  Backend& backend;
  const GrpcOptions options;
  CallCounter calls{0};
  GeneratorService generator;
  StatsService stats;
  std::unique_ptr<grpc::Server> server;
  std::thread health_thread;
  std::thread shutdown_thread;  // runs grpc::Server::Shutdown, which blocks
  // Set when Shutdown() has returned. Release/acquire is more than the flag
  // needs: Drain() only uses it to stop polling, and joins the thread after.
  std::atomic<bool> shut_down{false};
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool started = false;
};

GrpcServer::GrpcServer(Backend& backend, GrpcOptions options)
    : impl_(std::make_unique<Impl>(backend, std::move(options))) {}

GrpcServer::~GrpcServer() { Drain(std::chrono::steady_clock::now()); }

std::error_code GrpcServer::Start() {
  Impl& im = *impl_;
  if (im.started) return std::make_error_code(std::errc::operation_in_progress);
  // Both are process-wide switches that must be set before the builder runs.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(im.options.address + ":" + std::to_string(im.options.port),
                           grpc::InsecureServerCredentials(), &selected_port);
  builder.RegisterService(&im.generator);
  builder.RegisterService(&im.stats);
  im.server = builder.BuildAndStart();
  if (!im.server || selected_port == 0) {
    im.server.reset();
    return std::make_error_code(std::errc::address_in_use);
  }
  bound_port_ = static_cast<uint16_t>(selected_port);
  im.stopping = false;
  im.health_thread = std::thread([&im] { im.PollHealth(); });
  im.started = true;
  return {};
}

void GrpcServer::StopAccepting() {
  Impl& im = *impl_;
  if (!im.started || im.shutdown_thread.joinable()) return;
  {
    std::lock_guard lock(im.mutex);
    im.stopping = true;
  }
  im.wake.notify_all();
  im.health_thread.join();
  // Clients polling health see NOT_SERVING while in-flight calls drain.
  im.server->GetHealthCheckService()->SetServingStatus(false);
  // No deadline here: Drain() decides when to cut off what is left.
  im.shutdown_thread = std::thread([&im] {
    im.server->Shutdown();
    im.shut_down.store(true, std::memory_order_release);
  });
}

void GrpcServer::CloseIdle() {
  // Nothing to do at once: an idle channel can only be told apart from one
  // about to carry a call once the shutdown has begun, which Drain() waits for.
}

bool GrpcServer::Drain(net::Deadline deadline) {
  Impl& im = *impl_;
  if (!im.started) return true;
  StopAccepting();
  im.started = false;
  // While unary calls are in flight, wait for them (up to the deadline).
  // When none is, end every call and channel left: idle channels and
  // never-ending streams (health Watch). Repeated, because a channel that
  // connected just before the listener closed may come after the first sweep;
  // cancelling when nothing is in flight cuts off nothing that was asked.
  bool clean = true;
  while (!im.shut_down.load(std::memory_order_acquire)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      clean = false;
      grpc_server_cancel_all_calls(im.server->c_server());
      break;
    }
    if (im.calls.load() == 0) grpc_server_cancel_all_calls(im.server->c_server());
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(kDrainPollInterval, deadline - now));
  }
  im.shutdown_thread.join();
  im.server->Wait();
  im.server.reset();
  return clean;
}

}  // namespace katsubushi::grpc_api
