#include "katsubushi/stats.h"

#include <unistd.h>

#include <ctime>

namespace katsubushi {

std::string_view FrontName(FrontLabel front) {
  switch (front) {
    case FrontLabel::kMemcacheText: return "memcache_text";
    case FrontLabel::kMemcacheBinary: return "memcache_binary";
    case FrontLabel::kHttp: return "http";
    case FrontLabel::kGrpc: return "grpc";
    case FrontLabel::kCount: break;
  }
  return "unknown";
}

size_t ThisThreadStatsShard() {
  static std::atomic<size_t> next_shard{0};
  thread_local const size_t shard =
      next_shard.fetch_add(1, std::memory_order_relaxed) % kStatsShards;
  return shard;
}

uint64_t ShardedCounter::Sum() const {
  uint64_t sum = 0;
  for (const Cell& cell : cells_) sum += cell.value.load(std::memory_order_relaxed);
  return sum;
}

Stats::Stats() : started_(std::chrono::steady_clock::now()) {}

void Stats::ConnectionOpened(FrontLabel front) {
  FrontCounters& f = PerFront(front);
  f.curr_connections.fetch_add(1, std::memory_order_relaxed);
  f.total_connections.fetch_add(1, std::memory_order_relaxed);
}

void Stats::ConnectionClosed(FrontLabel front) {
  PerFront(front).curr_connections.fetch_sub(1, std::memory_order_relaxed);
}

void Stats::ConnectionIs(FrontLabel from, FrontLabel to) {
  if (from == to) return;
  FrontCounters& f = PerFront(from);
  f.curr_connections.fetch_sub(1, std::memory_order_relaxed);
  f.total_connections.fetch_sub(1, std::memory_order_relaxed);
  ConnectionOpened(to);
}

void Stats::CountFailed(FrontLabel front, const Status& error, uint64_t ids) {
  PerFront(front).misses.fetch_add(ids, std::memory_order_relaxed);
  misses_by_error_[static_cast<size_t>(IssueErrorOf(error))].fetch_add(
      ids, std::memory_order_relaxed);
}

StatsSnapshot Stats::Snapshot() const {
  StatsSnapshot s;
  s.pid = ::getpid();
  s.uptime_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now() - started_)
                         .count();
  s.unix_time = static_cast<int64_t>(std::time(nullptr));
  for (size_t i = 0; i < kFrontCount; ++i) {
    const FrontCounters& f = fronts_[i];
    s.curr_connections_by_front[i] = f.curr_connections.load(std::memory_order_relaxed);
    s.total_connections_by_front[i] = f.total_connections.load(std::memory_order_relaxed);
    s.cmd_get_by_front[i] = f.cmd_get.Sum();
    s.ids_by_front[i] = f.ids.Sum();
    s.misses_by_front[i] = f.misses.load(std::memory_order_relaxed);
    s.duration_by_front[i] = f.duration.Snapshot();
    s.curr_connections += s.curr_connections_by_front[i];
    s.total_connections += s.total_connections_by_front[i];
    s.cmd_get += s.cmd_get_by_front[i];
    s.get_hits += s.ids_by_front[i];
    s.get_misses += s.misses_by_front[i];
  }
  for (size_t i = 0; i < kIssueErrorCount; ++i) {
    s.misses_by_error[i] = misses_by_error_[i].load(std::memory_order_relaxed);
  }
  s.grpc_replies_corked = grpc_replies_corked_.load(std::memory_order_relaxed);
  s.grpc_replies_uncorkable = grpc_replies_uncorkable_.load(std::memory_order_relaxed);
  s.tls_enabled = tls_enabled_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kFrontCount; ++i) {
    s.tls_handshakes_by_front[i] = tls_handshakes_[i].load(std::memory_order_relaxed);
    for (size_t r = 0; r < kTlsHandshakeFailureCount; ++r) {
      s.tls_handshake_failures[i][r] = tls_handshake_failures_[i][r].load(std::memory_order_relaxed);
    }
  }
  s.tls_certificate_not_after_unix = tls_not_after_.load(std::memory_order_relaxed);
  s.tls_certificate_reloads = tls_reloads_.load(std::memory_order_relaxed);
  s.tls_certificate_reload_failures = tls_reload_failures_.load(std::memory_order_relaxed);
  return s;
}

void Stats::TlsCertificateLoaded(int64_t not_after_unix, bool reloaded) {
  tls_not_after_.store(not_after_unix, std::memory_order_relaxed);
  tls_enabled_.store(true, std::memory_order_relaxed);
  if (reloaded) tls_reloads_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace katsubushi
