// Stats: the counters every front shares (memcached `stats`, HTTP /stats and
// /metrics, gRPC Stats.Get).
//
// go-katsubushi's meaning is kept: cmd_get counts get commands (a multi-key
// get is one), get_hits counts IDs issued, get_misses counts IDs that could
// not be issued. Counters are also kept per front, and failures per kind.
//
// Hot-path cost: each Add is one uncontended relaxed fetch_add, because the
// hot counters are sharded across cache lines and each thread writes its own
// shard. Reads sum the shards and are meant for stats requests, not hot paths.
// Request durations go to a LatencyHistogram per front, sharded the same way.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "katsubushi/generator_core.h"
#include "katsubushi/latency_histogram.h"
#include "katsubushi/stats_shards.h"
#include "katsubushi/status.h"
#include "katsubushi/tls_handshake_failure.h"

namespace katsubushi {

// Which front a request or connection came through: the label of its counters
// (not to be confused with net::Front, the lifecycle every front implements).
enum class FrontLabel : uint8_t {
  kMemcacheText,
  kMemcacheBinary,
  kHttp,
  kGrpc,
  kCount,
};
inline constexpr size_t kFrontCount = static_cast<size_t>(FrontLabel::kCount);
inline constexpr size_t kIssueErrorCount = static_cast<size_t>(IssueError::kCount);
std::string_view FrontName(FrontLabel front);

// A counter written from many threads without sharing a cache line.
class ShardedCounter {
 public:
  static constexpr size_t kShards = kStatsShards;

  void Add(uint64_t n) {
    cells_[ThisThreadStatsShard()].value.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Sum() const;

 private:
  struct alignas(64) Cell {
    std::atomic<uint64_t> value{0};
  };
  std::array<Cell, kShards> cells_{};
};

struct StatsSnapshot {
  int64_t pid = 0;
  int64_t uptime_seconds = 0;
  int64_t unix_time = 0;
  uint64_t curr_connections = 0;
  uint64_t total_connections = 0;
  uint64_t cmd_get = 0;
  uint64_t get_hits = 0;
  uint64_t get_misses = 0;

  std::array<uint64_t, kFrontCount> curr_connections_by_front{};
  std::array<uint64_t, kFrontCount> total_connections_by_front{};
  std::array<uint64_t, kFrontCount> cmd_get_by_front{};
  std::array<uint64_t, kFrontCount> ids_by_front{};
  std::array<uint64_t, kFrontCount> misses_by_front{};
  std::array<uint64_t, kIssueErrorCount> misses_by_error{};
  std::array<LatencySnapshot, kFrontCount> duration_by_front{};

  // The gRPC front's reply coalescing (protocols/grpc/reply_coalescer.h).
  uint64_t grpc_replies_corked = 0;
  uint64_t grpc_replies_uncorkable = 0;

  // TLS on the fronts (tls/tls_server.h). A memcached connection's handshake
  // is counted under kMemcacheText: the first byte, which tells text from
  // binary, comes after it.
  bool tls_enabled = false;
  std::array<uint64_t, kFrontCount> tls_handshakes_by_front{};
  std::array<std::array<uint64_t, kTlsHandshakeFailureCount>, kFrontCount> tls_handshake_failures{};
  int64_t tls_certificate_not_after_unix = 0;
  uint64_t tls_certificate_reloads = 0;
  uint64_t tls_certificate_reload_failures = 0;
};

class Stats {
 public:
  Stats();
  Stats(const Stats&) = delete;
  Stats& operator=(const Stats&) = delete;

  void ConnectionOpened(FrontLabel front);
  void ConnectionClosed(FrontLabel front);
  // A connection opened as `from` turned out to be `to` (memcached text and
  // binary share a port; the first byte decides): moves it, current and total.
  void ConnectionIs(FrontLabel from, FrontLabel to);
  void CountGet(FrontLabel front) { PerFront(front).cmd_get.Add(1); }
  void CountIssued(FrontLabel front, uint64_t ids) { PerFront(front).ids.Add(ids); }
  // `ids` is how many IDs the failed request asked for.
  void CountFailed(FrontLabel front, const Status& error, uint64_t ids = 1);
  // `requests` requests of `front` answered after `duration` each, measured
  // by the front from the request's arrival (its last byte read) to its reply
  // handed to the socket.
  void ObserveDuration(FrontLabel front, std::chrono::nanoseconds duration, uint64_t requests = 1) {
    PerFront(front).duration.Observe(duration, requests);
  }

  // gRPC replies held behind TCP_CORK, and replies on a channel whose
  // socket the gRPC front could not find. Added once per batch of replies.
  void CountGrpcReplies(uint64_t corked, uint64_t uncorkable) {
    grpc_replies_corked_.fetch_add(corked, std::memory_order_relaxed);
    grpc_replies_uncorkable_.fetch_add(uncorkable, std::memory_order_relaxed);
  }

  void CountTlsHandshake(FrontLabel front) {
    tls_handshakes_[static_cast<size_t>(front)].fetch_add(1, std::memory_order_relaxed);
  }
  void CountTlsHandshakeFailure(FrontLabel front, TlsHandshakeFailure reason) {
    tls_handshake_failures_[static_cast<size_t>(front)][static_cast<size_t>(reason)].fetch_add(
        1, std::memory_order_relaxed);
  }
  // The certificate the fronts serve: its expiry, first at start, then at
  // each reload that loaded (counted), or a reload that failed (counted).
  void TlsCertificateLoaded(int64_t not_after_unix, bool reloaded);
  void CountTlsReloadFailure() { tls_reload_failures_.fetch_add(1, std::memory_order_relaxed); }

  StatsSnapshot Snapshot() const;

 private:
  struct FrontCounters {
    ShardedCounter cmd_get;
    ShardedCounter ids;
    std::atomic<uint64_t> misses{0};
    std::atomic<uint64_t> curr_connections{0};
    std::atomic<uint64_t> total_connections{0};
    LatencyHistogram duration;
  };
  FrontCounters& PerFront(FrontLabel front) { return fronts_[static_cast<size_t>(front)]; }

  const std::chrono::steady_clock::time_point started_;
  std::array<FrontCounters, kFrontCount> fronts_;
  std::array<std::atomic<uint64_t>, kIssueErrorCount> misses_by_error_{};
  std::atomic<uint64_t> grpc_replies_corked_{0};
  std::atomic<uint64_t> grpc_replies_uncorkable_{0};
  // Per connection, not per request: plain atomics are enough.
  std::array<std::atomic<uint64_t>, kFrontCount> tls_handshakes_{};
  std::array<std::array<std::atomic<uint64_t>, kTlsHandshakeFailureCount>, kFrontCount> tls_handshake_failures_{};
  std::atomic<bool> tls_enabled_{false};
  std::atomic<int64_t> tls_not_after_{0};
  std::atomic<uint64_t> tls_reloads_{0};
  std::atomic<uint64_t> tls_reload_failures_{0};
};

}  // namespace katsubushi
