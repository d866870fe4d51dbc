// A real CoreBackend (real GeneratorCore on a manual clock, real Stats) for the
// gRPC tests, built in its own translation unit: the test itself includes the
// generated stubs, whose class names clash with the core's (see
// protocols/grpc/backend.h).
#pragma once

#include <cstdint>
#include <memory>

#include "grpc/backend.h"

namespace katsubushi::grpc_api::testing {

class TestBackend {
 public:
  virtual ~TestBackend() = default;
  virtual Backend& backend() = 0;
  virtual void StepClockBackSeconds(int seconds) = 0;
  virtual void RestoreClock() = 0;
  // What Backend::Health() reports (as the Redis lease would).
  virtual void SetHealthy(bool healthy) = 0;
  virtual uint32_t worker_id() const = 0;
};

std::unique_ptr<TestBackend> MakeTestBackend(uint32_t worker_id);

}  // namespace katsubushi::grpc_api::testing
