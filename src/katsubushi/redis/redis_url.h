// RedisUrl: where the worker id leases live, parsed from the -redis flag.
//
//   redis://[user[:password]@]host[:port][/db][?ns=NAMESPACE]
//   rediscluster://[user[:password]@]host[:port][,host[:port]...][?ns=NAMESPACE]
//   redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db][?ns=NAMESPACE]#primary-name
//
// and rediss://, redisclusters://, rediss-sentinel:// for the same over TLS
// (with rediss-sentinel, to the sentinels and the data nodes alike).
//
// The first two are go-katsubushi's, parsed with the rules of fujiwara/raus
// (ParseRedisURI), so that a URL that works for a Go instance means the same
// Redis and namespace here; several comma-separated cluster seeds are ours
// (go-redis's cluster options take a list too). The sentinel form is
// Lettuce's (what Java and Spring users already write), with our ns; the
// primary's name may also come as ?sentinelMasterId=, as Lettuce allows.
//
// Port 6379 (26379 for a sentinel) and namespace "raus" by default; a db path
// is an error for a cluster; userinfo, query and fragment are percent-decoded
// as Go's net/url does. The credentials are the data nodes': sentinels are
// asked without AUTH.
//
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/redis/connection.h"
#include "katsubushi/status.h"

namespace katsubushi::redis {

struct RedisUrl {
  static constexpr uint16_t kDefaultPort = 6379;
  static constexpr uint16_t kDefaultSentinelPort = 26379;
  static constexpr std::string_view kDefaultNamespace = "raus";
  // A URL longer than this is refused rather than parsed.
  static constexpr size_t kMaxLength = 4096;
  // Cluster seeds or sentinels named in one URL.
  static constexpr size_t kMaxNodes = 32;

  enum class Mode { kStandalone, kCluster, kSentinel };

  Mode mode = Mode::kStandalone;
  bool tls = false;
  // The server (standalone), the seed nodes (cluster) or the sentinels.
  std::vector<NodeAddress> nodes;
  std::string primary_name;  // Sentinel: the monitored primary's name
  std::string username;      // empty: no ACL user
  std::string password;      // empty with has_password false: no AUTH
  bool has_password = false;
  int db = 0;
  std::string ns = std::string(kDefaultNamespace);

  bool cluster() const { return mode == Mode::kCluster; }
  // The URL with the password replaced by "xxxxx"; for logs.
  std::string Redacted() const;
};

Result<RedisUrl> ParseRedisUrl(std::string_view url);

}  // namespace katsubushi::redis
