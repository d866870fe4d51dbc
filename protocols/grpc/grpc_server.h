// GrpcServer: the gRPC front on -grpc-port, with go-katsubushi's services
// katsubushi.Generator (Fetch, FetchMulti) and katsubushi.Stats (Get), server
// reflection, and grpc.health.v1.Health reporting SERVING only while IDs can
// be issued (go-katsubushi hard-wires SERVING).
//
// Calls are served on the async completion-queue API, one queue and thread
// per GrpcOptions::threads (call_queue.h), on connections this front accepts
// itself (channel_acceptor.h) so that a batch's replies can be coalesced
// (reply_coalescer.h); health is its own synchronous service
// (health_service.h). Each of those headers says why.
//
// Stop (net::Front): StopAccepting() closes the listener, sends NOT_SERVING
// to health Watch streams and ends them, and sends every channel a GOAWAY
// while calls are still served (goaway.h says why gRPC's shutdown must wait).
// Drain() waits for the clients to leave (a quiet channel is closed instead),
// then begins gRPC's shutdown, lets the unary calls in flight finish, and
// ends everything else at once: reflection streams, which would otherwise
// hold the shutdown until the deadline. Past the deadline every call is
// cancelled. The Backend must outlive the server.
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
  void StopAccepting() override;
  void CloseIdle() override;
  bool Drain(net::Deadline deadline) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t bound_port_ = 0;
};

}  // namespace katsubushi::grpc_api
