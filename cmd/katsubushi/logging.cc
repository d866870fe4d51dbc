#include "logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace katsubushi {
namespace {

// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0 when there is
// none.
size_t ValidUtf8Length(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i < s.size() && byte(i) >= lo && byte(i) <= hi;
  };
  const unsigned char b = byte(0);
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return cont(1) ? 2 : 0;
  if (b == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (b == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b >= 0xF1 && b <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

template <typename Out>
void Escape(std::string_view text, Out& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto append = [&out](std::string_view s) { out.append(s.data(), s.data() + s.size()); };
  while (!text.empty()) {
    const size_t n = ValidUtf8Length(text);
    if (n == 0) {
      append("\\ufffd");
      text.remove_prefix(1);
      continue;
    }
    const char c = text[0];
    if (n > 1) {
      append(text.substr(0, n));
    } else if (c == '"') {
      append("\\\"");
    } else if (c == '\\') {
      append("\\\\");
    } else if (c == '\n') {
      append("\\n");
    } else if (c == '\r') {
      append("\\r");
    } else if (c == '\t') {
      append("\\t");
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      const char u[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xF], kHex[c & 0xF]};
      append(std::string_view(u, sizeof u));
    } else {
      out.push_back(c);
    }
    text.remove_prefix(n);
  }
}

// %* in a pattern: the message, escaped for a JSON string.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    Escape(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace

void AppendJsonEscaped(std::string_view text, std::string* out) { Escape(text, *out); }

std::unique_ptr<spdlog::formatter> NewJsonFormatter(bool with_time) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  // The time, level and logger name are ours and need no escaping.
  formatter->add_flag<JsonMessageFlag>('*').set_pattern(
      with_time ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","message":"%*"})"
                : R"({"level":"%l","message":"%*"})");
  return formatter;
}

void ConfigureLogging(const Config& config) {
  auto logger = spdlog::stderr_logger_mt("katsubushi");
  spdlog::set_default_logger(logger);
  if (config.log_format == "json") {
    spdlog::set_formatter(NewJsonFormatter());
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
