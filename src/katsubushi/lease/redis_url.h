// RedisUrl: where the worker id leases live, parsed from go-katsubushi's
// -redis flag with the rules of fujiwara/raus (ParseRedisURI), so that a URL
// that works for a Go instance means the same Redis and namespace here.
//
//   redis://[user[:password]@]host[:port][/db][?ns=NAMESPACE]
//   rediscluster://[user[:password]@]host[:port][?ns=NAMESPACE]
//
// Port 6379 and namespace "raus" by default; a db path is an error for a
// cluster; userinfo and the query are percent-decoded as Go's net/url does.
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "katsubushi/status.h"

namespace katsubushi::lease {

struct RedisUrl {
  static constexpr uint16_t kDefaultPort = 6379;
  static constexpr std::string_view kDefaultNamespace = "raus";
  // A URL longer than this is refused rather than parsed.
  static constexpr size_t kMaxLength = 4096;

  bool cluster = false;
  std::string host;  // without brackets for IPv6
  uint16_t port = kDefaultPort;
  std::string username;  // empty: no ACL user
  std::string password;  // empty with has_password false: no AUTH
  bool has_password = false;
  int db = 0;
  std::string ns = std::string(kDefaultNamespace);

  // host:port, with brackets around an IPv6 host; for logs.
  std::string Address() const;
  // The URL with the password replaced by "xxxxx"; for logs.
  std::string Redacted() const;
};

Result<RedisUrl> ParseRedisUrl(std::string_view url);

}  // namespace katsubushi::lease
