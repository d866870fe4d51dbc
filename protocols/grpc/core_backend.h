// CoreBackend: the Backend of the gRPC services over the core's GeneratorCore
// and Stats. Never include this next to the generated gRPC headers (backend.h
// says why).
#pragma once

#include <functional>
#include <string_view>

#include "grpc/backend.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/issuer.h"
#include "katsubushi/stats.h"

namespace katsubushi::grpc_api {

class CoreBackend final : public Backend {
 public:
  // `health` overrides the generator's own check when set (the Redis lease).
  CoreBackend(katsubushi::GeneratorCore& generator, katsubushi::Stats& stats,
              std::string_view version, std::function<Status()> health = {})
      : generator_(generator),
        stats_(stats),
        issuer_(generator, stats, FrontLabel::kGrpc),
        version_(version),
        health_(std::move(health)) {}

  Result<uint64_t> NextId() override;
  Status NextIds(std::span<uint64_t> out) override;
  StatsFields GetStats() override;
  void ObserveDuration(std::chrono::nanoseconds duration) override {
    stats_.ObserveDuration(FrontLabel::kGrpc, duration);
  }
  Status Health() override;
  void CountReplies(uint64_t corked, uint64_t uncorkable) override {
    stats_.CountGrpcReplies(corked, uncorkable);
  }

 private:
  katsubushi::GeneratorCore& generator_;
  katsubushi::Stats& stats_;
  katsubushi::Issuer issuer_;
  std::string version_;
  std::function<Status()> health_;
};

}  // namespace katsubushi::grpc_api
