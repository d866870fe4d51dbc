#include "grpc/health_service.h"

#include <utility>

#include "grpc/peer_sockets.h"

namespace katsubushi::grpc_api {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthService::HealthService(std::string generator_service)
    : generator_service_(std::move(generator_service)) {}

void HealthService::SetServing(bool serving) {
  {
    std::lock_guard lock(mutex_);
    if (shut_down_ || serving_ == serving) return;
    serving_ = serving;
  }
  changed_.notify_all();
}

void HealthService::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    serving_ = false;
    shut_down_ = true;
  }
  changed_.notify_all();
}

int HealthService::open_watches() {
  std::lock_guard lock(mutex_);
  return watches_;
}

HealthService::ServingStatus HealthService::StatusOf(const std::string& service) const {
  if (!service.empty() && service != generator_service_) return HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

grpc::Status HealthService::Check(grpc::ServerContext* context, const HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  if (peers_ != nullptr) (void)peers_->Find(context->peer());
  std::lock_guard lock(mutex_);
  const ServingStatus status = StatusOf(request->service());
  // What gRPC's default service answers for a name it does not know.
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "service name unknown");
  }
  response->set_status(status);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* context, const HealthCheckRequest* request,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  if (peers_ != nullptr) (void)peers_->Find(context->peer());
  std::unique_lock lock(mutex_);
  if (watches_ >= kMaxWatches) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "too many health Watch streams: at most " + std::to_string(kMaxWatches));
  }
  ++watches_;
  bool first = true;
  ServingStatus sent = HealthCheckResponse::UNKNOWN;
  bool client_gone = false;
  // Every change is sent before the stream ends, so a Watch sees the
  // NOT_SERVING of a shutdown.
  for (;;) {
    const ServingStatus now = StatusOf(request->service());
    if (first || now != sent) {
      HealthCheckResponse response;
      response.set_status(now);
      lock.unlock();
      const bool written = writer->Write(response);
      lock.lock();
      if (!written) {
        client_gone = true;
        break;
      }
      sent = now;
      first = false;
      continue;
    }
    if (shut_down_) break;
    if (context->IsCancelled()) {
      client_gone = true;
      break;
    }
    changed_.wait_for(lock, kWatchCancelCheck);
  }
  --watches_;
  if (client_gone) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
}

}  // namespace katsubushi::grpc_api
