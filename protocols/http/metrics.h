// Prometheus text exposition (format 0.0.4) of the server's counters.
#pragma once

#include <string>

#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"

namespace katsubushi::http {

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// `healthy` is whether IDs can be issued now (katsubushi_up).
std::string RenderMetrics(const StatsSnapshot& stats, const GeneratorCore& generator,
                          std::string_view version, bool healthy);

}  // namespace katsubushi::http
