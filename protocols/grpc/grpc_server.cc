// Includes the generated service headers: never the core's generator.h or
// stats.h (see backend.h).
#include "grpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "katsubushi.grpc.pb.h"

namespace katsubushi::grpc_api {
namespace {

// go-katsubushi's MaxHTTPBulkSize, which its FetchMulti also enforces.
constexpr uint32_t kMaxIdsPerRequest = 1000;

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
  explicit GeneratorService(Backend& backend) : backend_(backend) {}

  grpc::ServerUnaryReactor* Fetch(grpc::CallbackServerContext* context, const FetchRequest*,
                                  FetchResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const Result<uint64_t> id = backend_.NextId();
    if (!id.ok()) {
      reactor->Finish(ToGrpc(id.status()));
      return reactor;
    }
    response->set_id(*id);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* FetchMulti(grpc::CallbackServerContext* context,
                                       const FetchMultiRequest* request,
                                       FetchMultiResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
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
};

class StatsService final : public katsubushi::Stats::CallbackService {
 public:
  explicit StatsService(Backend& backend) : backend_(backend) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context, const StatsRequest*,
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
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Backend& backend_;
};

}  // namespace

struct GrpcServer::Impl {
  Impl(Backend& b, GrpcOptions o) : backend(b), options(std::move(o)), generator(b), stats(b) {}

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
  GeneratorService generator;
  StatsService stats;
  std::unique_ptr<grpc::Server> server;
  std::thread health_thread;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool started = false;
};

GrpcServer::GrpcServer(Backend& backend, GrpcOptions options)
    : impl_(std::make_unique<Impl>(backend, std::move(options))) {}

GrpcServer::~GrpcServer() { Stop(); }

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

void GrpcServer::Stop(std::chrono::milliseconds grace) {
  Impl& im = *impl_;
  if (!im.started) return;
  im.started = false;
  {
    std::lock_guard lock(im.mutex);
    im.stopping = true;
  }
  im.wake.notify_all();
  im.health_thread.join();
  // Clients polling health see NOT_SERVING while in-flight calls drain.
  im.server->GetHealthCheckService()->SetServingStatus(false);
  im.server->Shutdown(std::chrono::system_clock::now() + grace);
  im.server->Wait();
  im.server.reset();
}

}  // namespace katsubushi::grpc_api
