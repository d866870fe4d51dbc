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

namespace katsubushi::grpc_api {

struct GrpcOptions {
  // How often the health service re-reads Backend::Health().
  static constexpr std::chrono::milliseconds kHealthPollInterval{500};

  std::string address = "[::]";  // gRPC listens on IPv4 and IPv6 with [::]
  uint16_t port = 0;              // 0: an ephemeral port (see port())
};

class GrpcServer {
 public:
  GrpcServer(Backend& backend, GrpcOptions options);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  std::error_code Start();
  uint16_t port() const { return bound_port_; }
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t bound_port_ = 0;
};

}  // namespace katsubushi::grpc_api
