#include "katsubushi/client/server_address.h"

#include <sys/un.h>

#include <charconv>

namespace katsubushi::client {
namespace {

bool ParsePort(std::string_view text, uint16_t* out) {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  if (value == 0 || value > 65535) return false;
  *out = static_cast<uint16_t>(value);
  return true;
}

// "host:port" or "[v6]:port"; the port is optional only when `default_port`
// is non-zero.
bool ParseHostPort(std::string_view text, uint16_t default_port, ServerAddress* out) {
  std::string_view host;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
  } else {
    const size_t colon = text.find(':');
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
  }
  if (host.empty()) return false;
  for (char c : host) {
    // Whitespace, '/', '@', '?' and the like have no business in a host.
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) return false;
  }
  if (rest.empty()) {
    if (default_port == 0) return false;
    out->port = default_port;
  } else if (rest.front() != ':' || !ParsePort(rest.substr(1), &out->port)) {
    return false;
  }
  out->host.assign(host);
  return true;
}

}  // namespace

Result<ServerAddress> ParseServerAddress(std::string_view text) {
  ServerAddress address;
  address.text.assign(text);
  constexpr std::string_view kUnix = "unix:";
  constexpr std::string_view kHttp = "http://";
  constexpr std::string_view kHttps = "https://";
  constexpr std::string_view kTls = "tls://";
  if (text.starts_with(kUnix)) {
    address.transport = Transport::kMemcacheUnix;
    address.unix_path.assign(text.substr(kUnix.size()));
    if (address.unix_path.empty() || address.unix_path.size() >= sizeof(sockaddr_un::sun_path)) {
      return kBadServerAddress;
    }
    return address;
  }
  if (text.starts_with(kHttp) || text.starts_with(kHttps)) {
    address.transport = Transport::kHttp;
    address.tls = text.starts_with(kHttps);
    std::string_view rest = text.substr(address.tls ? kHttps.size() : kHttp.size());
    const size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "/" : rest.substr(slash);
    if (!ParseHostPort(authority, address.tls ? 443 : 80, &address)) return kBadServerAddress;
    // A query, fragment or anything needing escapes would change the request line.
    for (char c : path) {
      if (c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '%') return kBadServerAddress;
    }
    address.http_prefix.assign(path);
    if (address.http_prefix.back() != '/') address.http_prefix.push_back('/');
    return address;
  }
  if (text.starts_with(kTls)) {
    address.tls = true;
    if (!ParseHostPort(text.substr(kTls.size()), 0, &address)) return kBadServerAddress;
    return address;
  }
  if (text.find("://") != std::string_view::npos) return kBadServerAddress;  // tcp://, ...
  if (!ParseHostPort(text, 0, &address)) return kBadServerAddress;
  return address;
}

}  // namespace katsubushi::client
