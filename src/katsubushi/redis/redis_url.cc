#include "katsubushi/redis/redis_url.h"

#include <charconv>
#include <optional>

namespace katsubushi::redis {
namespace {

constexpr Status kBadScheme{StatusCode::kInvalidArgument,
                            "invalid scheme: the Redis URL must start with redis://, rediss://, "
                            "rediscluster://, redisclusters://, redis-sentinel:// or rediss-sentinel://"};
constexpr Status kTooLong{StatusCode::kInvalidArgument, "Redis URL is too long"};
constexpr Status kBadEscape{StatusCode::kInvalidArgument, "invalid percent-escape in Redis URL"};
constexpr Status kBadPort{StatusCode::kInvalidArgument, "invalid port in Redis URL"};
constexpr Status kBadHost{StatusCode::kInvalidArgument, "invalid host in Redis URL"};
constexpr Status kBadDatabase{StatusCode::kInvalidArgument, "invalid database in Redis URL"};
constexpr Status kClusterDatabase{StatusCode::kInvalidArgument,
                                  "database is not supported for redis cluster"};
constexpr Status kOneHost{StatusCode::kInvalidArgument,
                          "a redis:// URL names one host; list several only for a cluster or sentinels"};
constexpr Status kTooManyHosts{StatusCode::kInvalidArgument, "too many hosts in the Redis URL"};
constexpr Status kNoPrimaryName{StatusCode::kInvalidArgument,
                                "a redis-sentinel:// URL needs the primary's name as #name"};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's url.PathUnescape / QueryUnescape ('+' is a space only in a query).
std::optional<std::string> Unescape(std::string_view s, bool query) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (query && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool ParseDecimal(std::string_view s, int64_t max, int64_t* out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0 || v > max) {
    return false;
  }
  *out = v;
  return true;
}

// Go's url.Values: the first value of a key wins; pairs are split on '&'.
// Keys read: ns, and sentinelMasterId (Lettuce's) for a sentinel URL.
void ParseQuery(std::string_view query, RedisUrl* url, std::string* sentinel_master_id) {
  bool found_ns = false;
  bool found_master = false;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    auto key = Unescape(pair.substr(0, eq), true);
    if (!key) continue;  // Go skips pairs it cannot decode
    const bool is_ns = *key == "ns" && !found_ns;
    const bool is_master = *key == "sentinelMasterId" && !found_master;
    if (!is_ns && !is_master) continue;
    auto value = Unescape(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!value) continue;
    if (is_ns) {
      url->ns = std::move(*value);
      found_ns = true;
    } else {
      *sentinel_master_id = std::move(*value);
      found_master = true;
    }
  }
}

// host[:port] or [v6]:port. Like raus, a missing port means the default; an
// empty host means this machine (Go dials ":6379" as the local system).
Status ParseHostPort(std::string_view host, uint16_t default_port, NodeAddress* out) {
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return kBadHost;
    std::string_view after = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!after.empty()) {
      if (after.front() != ':') return kBadHost;
      port = after.substr(1);
    }
  } else if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (host.find(':') != std::string_view::npos) return kBadHost;
  }
  for (char c : host) {
    if (c == ' ' || c == '%' || c == ',' || static_cast<unsigned char>(c) < 0x21) return kBadHost;
  }
  out->host = host.empty() ? "localhost" : std::string(host);
  out->port = default_port;
  if (!port.empty()) {
    int64_t p = 0;
    if (!ParseDecimal(port, 65535, &p) || p == 0) return kBadPort;
    out->port = static_cast<uint16_t>(p);
  }
  return Status::Ok();
}

struct Scheme {
  std::string_view name;
  RedisUrl::Mode mode;
  bool tls;
};
constexpr Scheme kSchemes[] = {
    {"redis", RedisUrl::Mode::kStandalone, false},
    {"rediss", RedisUrl::Mode::kStandalone, true},
    {"rediscluster", RedisUrl::Mode::kCluster, false},
    {"redisclusters", RedisUrl::Mode::kCluster, true},
    {"redis-sentinel", RedisUrl::Mode::kSentinel, false},
    {"rediss-sentinel", RedisUrl::Mode::kSentinel, true},
};

}  // namespace

std::string RedisUrl::Redacted() const {
  std::string out;
  for (const Scheme& scheme : kSchemes) {
    if (scheme.mode == mode && scheme.tls == tls) out.append(scheme.name).append("://");
  }
  if (!username.empty() || has_password) {
    out.append(username);
    if (has_password) out.append(":xxxxx");
    out.append("@");
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i > 0) out.append(",");
    out.append(nodes[i].ToString());
  }
  if (!cluster()) out.append("/").append(std::to_string(db));
  out.append("?ns=").append(ns);
  if (mode == Mode::kSentinel) out.append("#").append(primary_name);
  return out;
}

Result<RedisUrl> ParseRedisUrl(std::string_view s) {
  if (s.size() > RedisUrl::kMaxLength) return kTooLong;
  RedisUrl url;
  const size_t scheme_end = s.find("://");
  if (scheme_end == std::string_view::npos) return kBadScheme;
  std::string name(s.substr(0, scheme_end));
  for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  const Scheme* scheme = nullptr;
  for (const Scheme& candidate : kSchemes) {
    if (candidate.name == name) scheme = &candidate;
  }
  if (scheme == nullptr) return kBadScheme;
  url.mode = scheme->mode;
  url.tls = scheme->tls;
  std::string_view rest = s.substr(scheme_end + 3);

  // Fragment, query, path, authority: in that order, as net/url splits them.
  std::string_view fragment;
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos) {
    fragment = rest.substr(hash + 1);
    rest = rest.substr(0, hash);
  }
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view path;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  std::string_view authority = rest;
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    auto user = Unescape(userinfo.substr(0, colon), false);
    if (!user) return kBadEscape;
    url.username = std::move(*user);
    if (colon != std::string_view::npos) {
      auto password = Unescape(userinfo.substr(colon + 1), false);
      if (!password) return kBadEscape;
      url.password = std::move(*password);
      url.has_password = true;
    }
  }

  const uint16_t default_port =
      url.mode == RedisUrl::Mode::kSentinel ? RedisUrl::kDefaultSentinelPort : RedisUrl::kDefaultPort;
  for (;;) {
    const size_t comma = authority.find(',');
    if (comma != std::string_view::npos && url.mode == RedisUrl::Mode::kStandalone) return kOneHost;
    if (url.nodes.size() == RedisUrl::kMaxNodes) return kTooManyHosts;
    NodeAddress node;
    if (Status st = ParseHostPort(authority.substr(0, comma), default_port, &node); !st.ok()) return st;
    url.nodes.push_back(std::move(node));
    if (comma == std::string_view::npos) break;
    authority = authority.substr(comma + 1);
  }

  if (!path.empty() && path != "/") {
    if (url.cluster()) return kClusterDatabase;
    // raus takes the first path segment ("/3/x" is db 3).
    std::string_view segment = path.substr(1);
    segment = segment.substr(0, segment.find('/'));
    int64_t db = 0;
    if (!ParseDecimal(segment, INT32_MAX, &db)) return kBadDatabase;
    url.db = static_cast<int>(db);
  }
  std::string sentinel_master_id;
  ParseQuery(query, &url, &sentinel_master_id);
  if (url.mode == RedisUrl::Mode::kSentinel) {
    auto primary = Unescape(fragment, false);
    if (!primary) return kBadEscape;
    url.primary_name = primary->empty() ? sentinel_master_id : std::move(*primary);
    if (url.primary_name.empty()) return kNoPrimaryName;
  }
  return url;
}

}  // namespace katsubushi::redis
