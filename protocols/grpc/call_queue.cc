// Includes the generated service headers: never the core's generator.h or
// stats.h (see backend.h).
#include "grpc/call_queue.h"

#include <grpc/support/time.h>

#include <chrono>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "grpc/reply_coalescer.h"
#include "katsubushi/limits.h"

namespace katsubushi::grpc_api {
namespace {

grpc::Status ToGrpc(const katsubushi::Status& s) {
  const std::string message(s.message());
  if (s.code() == StatusCode::kInvalidArgument) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
  }
  // Every other failure to issue is temporary (the clock, the lease).
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
}

grpc::Status Fetch(Backend& backend, const FetchRequest&, FetchResponse* response) {
  const Result<uint64_t> id = backend.NextId();
  if (!id.ok()) return ToGrpc(id.status());
  response->set_id(*id);
  return grpc::Status::OK;
}

grpc::Status FetchMulti(Backend& backend, const FetchMultiRequest& request,
                        FetchMultiResponse* response) {
  const uint32_t n = request.n() == 0 ? 1 : request.n();
  if (n > kMaxIdsPerRequest) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "too many IDs requested: " + std::to_string(n) +
                            ", n should be smaller than " + std::to_string(kMaxIdsPerRequest));
  }
  auto* ids = response->mutable_ids();
  ids->Resize(static_cast<int>(n), 0);
  if (const katsubushi::Status s = backend.NextIds(std::span<uint64_t>(ids->mutable_data(), n));
      !s.ok()) {
    response->clear_ids();
    return ToGrpc(s);
  }
  return grpc::Status::OK;
}

grpc::Status GetStats(Backend& backend, const StatsRequest&, StatsResponse* response) {
  const StatsFields s = backend.GetStats();
  response->set_pid(static_cast<int32_t>(s.pid));
  response->set_uptime(s.uptime);
  response->set_time(s.time);
  response->set_version(s.version);
  response->set_curr_connections(s.curr_connections);
  response->set_total_connections(s.total_connections);
  response->set_cmd_get(s.cmd_get);
  response->set_get_hits(s.get_hits);
  response->set_get_misses(s.get_misses);
  return grpc::Status::OK;
}

// What a completion's tag points to.
class Call {
 public:
  virtual ~Call() = default;
  // `ok`: the completion's status, false when the server is shutting down.
  // Returns true when the call is over; the queue deletes it after the
  // batch (ReplyCoalescer::Flush needs its connection alive until then).
  virtual bool Proceed(bool ok, ReplyCoalescer& coalescer) = 0;
};

struct CallEnv {
  Backend& backend;
  CallCounter& calls;
  grpc::ServerCompletionQueue& queue;
};

// One unary RPC: waits for a request, answers it inline, writes the reply.
template <class Service, class Request, class Response>
class UnaryCall final : public Call {
 public:
  using RequestMethod = void (Service::*)(grpc::ServerContext*, Request*,
                                          grpc::ServerAsyncResponseWriter<Response>*,
                                          grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                          void*);
  using Handler = grpc::Status (*)(Backend&, const Request&, Response*);

  // A call waiting for the next request of `method`; it owns itself.
  static void Await(Service& service, RequestMethod method, Handler handler, const CallEnv& env) {
    new UnaryCall(service, method, handler, env);
  }

  ~UnaryCall() override {
    if (replying_) env_.calls.answering.fetch_sub(1);
    env_.calls.alive.fetch_sub(1);
  }

  bool Proceed(bool ok, ReplyCoalescer& coalescer) override {
    if (replying_) {
      if (ok) env_.backend.ObserveDuration(std::chrono::steady_clock::now() - received_at_);
      return true;
    }
    if (!ok) return true;  // shutting down: no request will come
    received_at_ = std::chrono::steady_clock::now();
    Await(service_, method_, handler_, env_);  // keep the queue's calls waiting
    replying_ = true;
    env_.calls.answering.fetch_add(1);
    const grpc::Status status = handler_(env_.backend, request_, &response_);
    coalescer.BeforeReply(context_.peer());
    if (status.ok()) {
      responder_.Finish(response_, status, this);
    } else {
      responder_.FinishWithError(status, this);
    }
    return false;
  }

 private:
  UnaryCall(Service& service, RequestMethod method, Handler handler, const CallEnv& env)
      : service_(service), method_(method), handler_(handler), env_(env) {
    env_.calls.alive.fetch_add(1);
    (service_.*method_)(&context_, &request_, &responder_, &env_.queue, &env_.queue, this);
  }

  Service& service_;
  const RequestMethod method_;
  const Handler handler_;
  const CallEnv env_;
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> responder_{&context_};
  bool replying_ = false;
  std::chrono::steady_clock::time_point received_at_;
};

using GeneratorService = katsubushi::Generator::AsyncService;
using StatsService = katsubushi::Stats::AsyncService;

}  // namespace

CallQueue::CallQueue(AsyncServices& services, Backend& backend, CallCounter& calls,
                     std::unique_ptr<grpc::ServerCompletionQueue> queue, PeerSockets* peers)
    : services_(services), backend_(backend), calls_(calls), peers_(peers), queue_(std::move(queue)) {}

CallQueue::~CallQueue() { Shutdown(); }

void CallQueue::Start() {
  const CallEnv env{backend_, calls_, *queue_};
  for (int i = 0; i < kPendingCallsPerMethod; ++i) {
    UnaryCall<GeneratorService, FetchRequest, FetchResponse>::Await(
        services_.generator, &GeneratorService::RequestFetch, &Fetch, env);
    UnaryCall<GeneratorService, FetchMultiRequest, FetchMultiResponse>::Await(
        services_.generator, &GeneratorService::RequestFetchMulti, &FetchMulti, env);
  }
  // Stats is rare: one waiting call is enough.
  UnaryCall<StatsService, StatsRequest, StatsResponse>::Await(
      services_.stats, &StatsService::RequestGet, &GetStats, env);
  thread_ = std::thread([this] { Serve(); });
}

void CallQueue::Shutdown() {
  if (!thread_.joinable()) return;
  queue_->Shutdown();
  thread_.join();
}

void CallQueue::Serve() {
  ReplyCoalescer coalescer(peers_);
  std::vector<Call*> finished;
  void* tag = nullptr;
  bool ok = false;
  const auto take = [&] {
    auto* call = static_cast<Call*>(tag);
    if (call->Proceed(ok, coalescer)) finished.push_back(call);
  };
  // Blocks for the first completion of a batch, then takes those already
  // waiting (AsyncNext with a past deadline polls once, without blocking).
  while (queue_->Next(&tag, &ok)) {
    take();
    for (int n = 1; n < ReplyCoalescer::kMaxCompletionsPerBatch; ++n) {
      if (queue_->AsyncNext(&tag, &ok, gpr_inf_past(GPR_CLOCK_MONOTONIC)) !=
          grpc::CompletionQueue::GOT_EVENT) {
        break;
      }
      take();
    }
    coalescer.Flush();
    if (const ReplyCoalescer::Counts counts = coalescer.TakeCounts();
        counts.corked > 0 || counts.uncorkable > 0) {
      backend_.CountReplies(counts.corked, counts.uncorkable);
    }
    for (Call* call : finished) delete call;
    finished.clear();
  }
}

}  // namespace katsubushi::grpc_api
