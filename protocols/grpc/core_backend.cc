#include "grpc/core_backend.h"

#include <spdlog/spdlog.h>

#include "katsubushi/tls/tls_server.h"

namespace katsubushi::grpc_api {

Result<uint64_t> CoreBackend::NextId() { return issuer_.Next(); }

Status CoreBackend::NextIds(std::span<uint64_t> out) { return issuer_.NextN(out); }

StatsFields CoreBackend::GetStats() {
  const StatsSnapshot s = stats_.Snapshot();
  StatsFields f;
  f.pid = s.pid;
  f.uptime = s.uptime_seconds;
  f.time = s.unix_time;
  f.version = version_;
  f.curr_connections = static_cast<int64_t>(s.curr_connections);
  f.total_connections = static_cast<int64_t>(s.total_connections);
  f.cmd_get = static_cast<int64_t>(s.cmd_get);
  f.get_hits = static_cast<int64_t>(s.get_hits);
  f.get_misses = static_cast<int64_t>(s.get_misses);
  return f;
}

void CoreBackend::CountTlsHandshakeError(unsigned long openssl_error) {
  stats_.CountTlsHandshakeFailure(FrontLabel::kGrpc, tls::ClassifyOpenSslError(openssl_error));
}

void CoreBackend::Log(LogLevel level, std::string_view text) {
  switch (level) {
    case LogLevel::kDebug: spdlog::debug("gRPC: {}", text); break;
    case LogLevel::kInfo: spdlog::info("gRPC: {}", text); break;
    case LogLevel::kError: spdlog::error("gRPC: {}", text); break;
  }
}

Status CoreBackend::Health() { return health_ ? health_() : generator_.CanIssue(); }

}  // namespace katsubushi::grpc_api
