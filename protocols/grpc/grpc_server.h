// GrpcServer: the gRPC front on -grpc-port, with go-katsubushi's services
// katsubushi.Generator (Fetch, FetchMulti) and katsubushi.Stats (Get), server
// reflection, and grpc.health.v1.Health reporting SERVING only while IDs can
// be issued (go-katsubushi hard-wires SERVING).
//
// Handlers use the callback API and finish inline: issuing an ID never
// blocks on I/O, so there is nothing to hand off to another thread.
//
// Start() binds and serves; Stop() stops accepting, lets in-flight calls
// finish within `grace`, then cancels the rest. The Backend must outlive the
// server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "grpc/backend.h"
#include "grpc/grpc_front.h"

namespace katsubushi::grpc_api {

class GrpcServer final : public GrpcFront {
 public:
  GrpcServer(Backend& backend, GrpcOptions options);
  ~GrpcServer() override;
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  std::error_code Start() override;
  uint16_t port() const override { return bound_port_; }
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t bound_port_ = 0;
};

}  // namespace katsubushi::grpc_api
