// HealthService: grpc.health.v1.Health (Check and Watch) for the server ("")
// and katsubushi.Generator, SERVING only while IDs can be issued.
//
// Why not gRPC's default health service: it is built on the callback API,
// whose threads poll the same connections as the completion-queue threads
// that serve Fetch, so a call's bytes were read by one thread and answered by
// another, which costs every Fetch (README, Benchmarks). This one uses the synchronous API, whose threads only serve health
// (and reflection) calls.
//
// Watch holds one of gRPC's synchronous-server threads for the life of the
// stream, so at most kMaxWatches streams are open at once; more are refused
// with RESOURCE_EXHAUSTED. Shutdown() sends NOT_SERVING to every Watch and
// ends it (the stop closes health streams at once, see grpc_server.h).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "health.grpc.pb.h"

namespace katsubushi::grpc_api {

class PeerSockets;

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  static constexpr int kMaxWatches = 64;
  // How often a Watch with nothing to send looks whether its client left
  // (the synchronous API has no notification for it).
  static constexpr std::chrono::milliseconds kWatchCancelCheck{500};

  // `generator_service`: the service name reported besides "".
  explicit HealthService(std::string generator_service);

  // TLS: a connection that only asks for health (a probe) has its handshake
  // counted too (peer_sockets.h). Before the server starts.
  void SetPeers(PeerSockets* peers) { peers_ = peers; }

  void SetServing(bool serving);
  // NOT_SERVING from now on, and every Watch ends, once it has sent that.
  void Shutdown();
  // The Watch streams still open (after Shutdown(): those still sending
  // their last update).
  int open_watches();

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;
  ServingStatus StatusOf(const std::string& service) const;  // with mutex_ held

  const std::string generator_service_;
  PeerSockets* peers_ = nullptr;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool serving_ = false;    // guarded by mutex_
  bool shut_down_ = false;  // guarded by mutex_
  int watches_ = 0;         // guarded by mutex_
};

}  // namespace katsubushi::grpc_api
