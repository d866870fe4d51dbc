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
#include "katsubushi/tls/certificate_store.h"

namespace katsubushi::grpc_api {

class CoreBackend final : public Backend {
 public:
  // `health` overrides the generator's own check when set (the Redis lease).
  // `certificates`: the store the front's TLS takes its certificate from;
  // null when the front speaks plaintext. It must outlive the backend.
  CoreBackend(katsubushi::GeneratorCore& generator, katsubushi::Stats& stats,
              std::string_view version, std::function<Status()> health = {},
              const tls::CertificateStore* certificates = nullptr)
      : generator_(generator),
        stats_(stats),
        issuer_(generator, stats, FrontLabel::kGrpc),
        version_(version),
        health_(std::move(health)),
        certificates_(certificates) {}

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
  std::shared_ptr<const tls::CertificateSet> Certificates() override {
    return certificates_ != nullptr ? certificates_->current() : nullptr;
  }
  uint64_t CertificateGeneration() override {
    return certificates_ != nullptr ? certificates_->generation() : 0;
  }
  void CountTlsHandshake() override { stats_.CountTlsHandshake(FrontLabel::kGrpc); }
  void CountTlsHandshakeFailure(TlsHandshakeFailure reason) override {
    stats_.CountTlsHandshakeFailure(FrontLabel::kGrpc, reason);
  }
  void CountTlsHandshakeError(unsigned long openssl_error) override;
  void Log(LogLevel level, std::string_view text) override;

 private:
  katsubushi::GeneratorCore& generator_;
  katsubushi::Stats& stats_;
  katsubushi::Issuer issuer_;
  std::string version_;
  std::function<Status()> health_;
  const tls::CertificateStore* certificates_;
};

}  // namespace katsubushi::grpc_api
