#include "grpc/core_backend.h"

namespace katsubushi::grpc_api {

Result<uint64_t> CoreBackend::NextId() {
  stats_.CountGet(Front::kGrpc);
  Result<uint64_t> id = generator_.Next();
  if (id.ok()) {
    stats_.CountIssued(Front::kGrpc, 1);
  } else {
    stats_.CountFailed(Front::kGrpc, id.status());
  }
  return id;
}

Status CoreBackend::NextIds(std::span<uint64_t> out) {
  stats_.CountGet(Front::kGrpc);
  const Status s = generator_.NextN(out);
  if (s.ok()) {
    stats_.CountIssued(Front::kGrpc, out.size());
  } else {
    stats_.CountFailed(Front::kGrpc, s, out.size());
  }
  return s;
}

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

Status CoreBackend::Health() { return health_ ? health_() : generator_.CanIssue(); }

}  // namespace katsubushi::grpc_api
