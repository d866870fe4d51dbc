// libFuzzer target for the command line and environment parser.
//
// Input: NUL-separated arguments, then after a 0x01 byte NUL-separated
// NAME=value environment entries. Invariants: the exit code is 0, 1 or 2; an
// error message is present exactly when the exit code is not 0 (help aside);
// a successful parse yields a valid configuration (worker id within the
// layout or Redis set, some listener on, ports in range) unless it only asks
// for -version or -health-check.
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "katsubushi/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\x01');
  const std::string args_part = input.substr(0, split);
  const std::string env_part = split == std::string::npos ? "" : input.substr(split + 1);

  std::vector<std::string> storage;
  size_t start = 0;
  while (start <= args_part.size() && storage.size() < 64) {
    const size_t end = args_part.find('\0', start);
    storage.push_back(args_part.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::vector<std::string_view> args(storage.begin(), storage.end());
  std::map<std::string, std::string> env;
  start = 0;
  while (start < env_part.size()) {
    const size_t end = env_part.find('\0', start);
    const std::string entry = env_part.substr(start, end - start);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  const katsubushi::ConfigResult r = katsubushi::ParseConfig(
      args, [&env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      });
  if (r.exit_code != 0 && r.exit_code != 1 && r.exit_code != 2) std::abort();
  if (r.help) return 0;
  if ((r.exit_code != 0) != !r.error.empty()) std::abort();
  // -version and -health-check need no worker id nor listener of their own.
  if (r.ok() && !r.config.show_version && !r.config.health_check) {
    const auto& c = r.config;
    const uint32_t max_worker = c.js_safe_id ? 63 : 1023;
    if (c.worker_id > max_worker) std::abort();
    if (c.worker_id == 0 && c.redis.empty()) std::abort();
    if (c.port == 0 && c.sock.empty() && c.http_port == 0 && c.grpc_port == 0) std::abort();
    if (c.port < 0 || c.port > 65535 || c.http_port < 0 || c.http_port > 65535) std::abort();
    if (c.worker_id == 0 && (c.min_worker_id == 0 || c.min_worker_id > c.max_worker_id)) std::abort();
  }
  return 0;
}
