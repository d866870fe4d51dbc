// Config: the server's settings from Go-style flags and environment variables,
// accepted exactly as go-katsubushi accepts them so that an existing ECS task
// definition or docker-compose file works unchanged.
//
//   flags:  -name=value, -name value, --name=value, --name value; a bool flag
//           is -name or -name=<bool> and never takes the next argument;
//           parsing stops at the first non-flag argument or after "--".
//   env:    for flag "worker-id": KATSUBUSHI_WORKER_ID, then WORKER_ID, then
//           worker_id; the first non-empty one is used; flags override env.
//           A bad KATSUBUSHI_* value is fatal (exit 2); a bad unprefixed one
//           (a platform's PORT, say) is a warning and is ignored.
//   ports:  a number, or a URL such as tcp://10.0.0.1:11212 (service links).
//
// ParseConfig is a pure function of its arguments; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace katsubushi {

struct Config {
  static constexpr int kDefaultPort = 11212;
  static constexpr std::chrono::milliseconds kDefaultIdleTimeout{600'000};
  static constexpr int kMaxThreads = 1024;
  static constexpr std::chrono::milliseconds kDefaultLeaseExpiry{600'000};
  static constexpr std::chrono::milliseconds kMinLeaseExpiry{2'000};
  static constexpr std::chrono::milliseconds kMaxLeaseExpiry{3'600'000};
  static constexpr std::chrono::milliseconds kDefaultRedisReplicaTimeout{500};
  static constexpr std::chrono::milliseconds kMaxRedisReplicaTimeout{10'000};
  // SIGTERM to exit: in-flight requests get this long (ECS sends SIGKILL 30 s
  // after SIGTERM by default; its stopTimeout must cover this plus the
  // release of the worker id).
  static constexpr std::chrono::milliseconds kDefaultShutdownTimeout{5'000};

  uint32_t worker_id = 0;          // 0 = not given (the Go rule)
  int port = kDefaultPort;         // 0 = off
  std::string sock;                // unix socket path; when set, port is ignored (as Go)
  std::chrono::milliseconds idle_timeout = kDefaultIdleTimeout;  // 0 = none
  std::string log_level = "info";  // debug, info, warning (or warn), error, fatal, panic
  std::string log_format = "text"; // text | json
  int http_port = 0;               // 0 = off
  int grpc_port = 0;               // 0 = off
  std::string redis;               // redis://, rediss://, rediscluster://, redis-sentinel://, ...
  std::string redis_tls_ca_file;   // empty: the system's CA store
  std::string redis_tls_cert_file; // mutual TLS
  std::string redis_tls_key_file;
  bool redis_tls_skip_verify = false;
  uint32_t redis_min_replicas = 0;
  std::chrono::milliseconds redis_replica_timeout = kDefaultRedisReplicaTimeout;  // 0: no WAIT
  // TLS on the TCP fronts (the unix socket stays plaintext).
  std::string tls_cert_file;       // PEM: certificate, then its chain
  std::string tls_key_file;        // PEM private key
  std::string tls_client_ca_file;  // mutual TLS: clients present a certificate this CA signed
  // -tls: which fronts speak TLS. With a certificate and no -tls, every
  // enabled TCP front; after ParseConfig these are the final answer.
  struct TlsFronts {
    bool memcache = false;
    bool http = false;
    bool grpc = false;
    bool any() const { return memcache || http || grpc; }
  };
  TlsFronts tls;
  bool tls_fronts_given = false;   // -tls was set
  // This process as a TLS client of the fronts (-health-check): the CA that
  // verifies their certificate (empty: not verified; it dials 127.0.0.1), and
  // the certificate it presents when they ask for one (-tls-client-ca-file).
  std::string tls_ca_file;
  std::string tls_client_cert_file;
  std::string tls_client_key_file;
  uint32_t min_worker_id = 0;      // with -redis: 0 means 1
  uint32_t max_worker_id = 0;      // with -redis: 0 means the layout's largest
  std::chrono::milliseconds lease_expiry = kDefaultLeaseExpiry;  // Redis lease key expiry
  bool lease_expiry_given = false;  // -lease-expiry was set (flag or env), not defaulted
  std::string state_file;          // static worker id: restart watermark file
  bool js_safe_id = false;
  bool enable_pprof = false;
  bool enable_stats = false;
  int debug_port = 8080;
  bool show_version = false;
  bool health_check = false;       // query the running server's port, exit 0/1
  int threads = 0;                 // io threads; 0 = hardware concurrency
  bool lambda_extension = false;   // run as an AWS Lambda extension (with AWS_LAMBDA_RUNTIME_API)
  // One deadline for every front's in-flight requests at a stop; 0: none wait.
  std::chrono::milliseconds shutdown_timeout = kDefaultShutdownTimeout;
};

// Returns the value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment, for main().
EnvLookup ProcessEnv();

struct ConfigResult {
  Config config;
  // 0: run with `config`. Otherwise exit with this code after printing
  // `error` (and usage, when `show_usage`).
  int exit_code = 0;
  // -h / -help: print usage and exit 0.
  bool help = false;
  bool show_usage = false;
  std::string error;
  std::vector<std::string> warnings;

  bool ok() const { return exit_code == 0 && !help; }
};

// `args` excludes the program name.
ConfigResult ParseConfig(std::span<const std::string_view> args, const EnvLookup& env);

// Go-flag-style usage text listing every flag.
std::string ConfigUsage();

}  // namespace katsubushi
