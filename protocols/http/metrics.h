// Prometheus text exposition (format 0.0.4) of the server's counters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"

namespace katsubushi::http {

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// `healthy` is whether IDs can be issued now (katsubushi_up).
std::string RenderMetrics(const StatsSnapshot& stats, const GeneratorCore& generator,
                          std::string_view version, bool healthy);

// The Redis lease keeper's counters (lease::LeaseCounters, copied here so the
// HTTP front does not depend on the lease library).
struct LeaseMetrics {
  uint64_t acquisitions = 0;
  uint64_t losses = 0;
  uint64_t renew_failures = 0;
  uint64_t redis_reconnects = 0;
  uint64_t replica_ack_failures = 0;
  bool eviction_possible = false;
};
std::string RenderLeaseMetrics(const LeaseMetrics& lease);

}  // namespace katsubushi::http
