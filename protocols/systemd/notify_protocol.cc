#include "systemd/notify_protocol.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace katsubushi::systemd {
namespace {

// The whole of `text` as a positive decimal number.
std::optional<uint64_t> ParsePositive(std::string_view text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value == 0) return std::nullopt;
  return value;
}

}  // namespace

ParsedNotifySocket ParseNotifySocket(std::string_view value) {
  ParsedNotifySocket parsed;
  if (value.empty()) return parsed;
  const bool abstract = value.front() == '@';
  if (!abstract && value.front() != '/') {
    // vsock:CID:PORT (systemd 253, VMs) and relative paths are not for a
    // server on the host.
    parsed.error = "NOTIFY_SOCKET=" + std::string(value) +
                   " is not a socket path (/...) or an abstract name (@...)";
    return parsed;
  }
  const std::string_view name = abstract ? value.substr(1) : value;
  // A path needs its terminating NUL in sun_path; an abstract name its
  // leading one.
  if (name.empty() || name.size() + 1 > sizeof(sockaddr_un::sun_path)) {
    parsed.error = "NOTIFY_SOCKET=" + std::string(value) + " is empty or longer than a socket address";
    return parsed;
  }
  if (name.find('\0') != std::string_view::npos) {
    parsed.error = "NOTIFY_SOCKET contains a NUL byte";
    return parsed;
  }
  parsed.address = NotifyAddress{std::string(name), abstract};
  return parsed;
}

socklen_t ToSockaddr(const NotifyAddress& address, sockaddr_un* out) {
  std::memset(out, 0, sizeof(*out));
  out->sun_family = AF_UNIX;
  const size_t offset = address.abstract ? 1 : 0;  // sun_path[0] = '\0': abstract
  std::memcpy(out->sun_path + offset, address.name.data(), address.name.size());
  const size_t path_bytes = offset + address.name.size() + (address.abstract ? 0 : 1);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_bytes);
}

std::string StatusLine(std::string_view text) {
  std::string line = "STATUS=";
  size_t size = text.size();
  if (size > kMaxStatusBytes) {
    size = kMaxStatusBytes;
    // Back up over UTF-8 continuation bytes (10xxxxxx) to a character start.
    while (size > 0 && (static_cast<unsigned char>(text[size]) & 0xC0) == 0x80) --size;
  }
  for (char c : text.substr(0, size)) {
    const auto byte = static_cast<unsigned char>(c);
    line += byte < 0x20 || byte == 0x7F ? ' ' : c;
  }
  return line;
}

std::string MainPidLine(pid_t pid) { return "MAINPID=" + std::to_string(pid); }

std::optional<std::chrono::microseconds> WatchdogPingInterval(std::string_view watchdog_usec,
                                                              std::string_view watchdog_pid,
                                                              pid_t self) {
  if (!watchdog_pid.empty()) {
    const std::optional<uint64_t> pid = ParsePositive(watchdog_pid);
    if (!pid || *pid != static_cast<uint64_t>(self)) return std::nullopt;
  }
  const std::optional<uint64_t> usec = ParsePositive(watchdog_usec);
  // sd_watchdog_enabled(3) rejects values that do not fit a usec_t either.
  if (!usec || *usec >= static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  // Half the timeout, as sd_watchdog_enabled(3) advises: a late ping still lands in time.
  return std::chrono::microseconds(std::max<uint64_t>(*usec / 2, 1));
}

bool NeedsMainPid(std::string_view systemd_exec_pid, pid_t self) {
  const std::optional<uint64_t> pid = ParsePositive(systemd_exec_pid);
  return pid && *pid != static_cast<uint64_t>(self);
}

}  // namespace katsubushi::systemd
