#include "logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace katsubushi {

void ConfigureLogging(const Config& config) {
  auto logger = spdlog::stderr_logger_mt("katsubushi");
  spdlog::set_default_logger(logger);
  if (config.log_format == "json") {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","message":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
  const std::string& level = config.log_level;
  spdlog::level::level_enum l = spdlog::level::info;
  if (level == "debug") l = spdlog::level::debug;
  else if (level == "warning" || level == "warn") l = spdlog::level::warn;
  else if (level == "error") l = spdlog::level::err;
  else if (level == "fatal" || level == "panic") l = spdlog::level::critical;
  spdlog::set_level(l);
}

lease::LogFunction LeaseLogToSpdlog() {
  return [](lease::LogLevel level, std::string_view message) {
    switch (level) {
      case lease::LogLevel::kDebug: spdlog::debug("{}", message); break;
      case lease::LogLevel::kInfo: spdlog::info("{}", message); break;
      case lease::LogLevel::kWarning: spdlog::warn("{}", message); break;
      case lease::LogLevel::kError: spdlog::error("{}", message); break;
    }
  };
}

}  // namespace katsubushi
