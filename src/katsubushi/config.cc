// Why hand-written and not Boost.Program_options: Go's flag package has rules
// program_options cannot express together — a single dash for long names, a
// bool flag that takes "=value" but never the next argument, parsing that stops
// at the first non-flag argument, and Go's exact error texts and exit codes.
// Compatibility with go-katsubushi's command line is the point of this file,
// so it follows Go's rules directly; the table below keeps it declarative.
#include "katsubushi/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "katsubushi/go_duration.h"
#include "katsubushi/id_layout.h"
#include "katsubushi/redis/redis_url.h"


namespace katsubushi {
namespace {

using SetError = std::optional<std::string>;  // nullopt: value accepted

struct Flag {
  std::string_view name;
  bool is_bool;
  std::string_view type;  // for usage: "uint", "int", "string", "duration"
  std::string_view help;
  std::string_view default_text;
  SetError (*set)(Config&, std::string_view);
};

SetError ParseUint32(std::string_view s, uint32_t* out) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return "parse error";
  if (v > UINT32_MAX) return "value out of range";
  *out = static_cast<uint32_t>(v);
  return std::nullopt;
}

SetError ParseInt(std::string_view s, int* out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 10);
  if (s.empty() || ec == std::errc::result_out_of_range) return "value out of range";
  if (ec != std::errc() || end != s.data() + s.size()) return "parse error";
  return std::nullopt;
}

// strconv.ParseBool.
SetError ParseBool(std::string_view s, bool* out) {
  static constexpr std::string_view kTrue[] = {"1", "t", "T", "TRUE", "true", "True"};
  static constexpr std::string_view kFalse[] = {"0", "f", "F", "FALSE", "false", "False"};
  if (std::find(std::begin(kTrue), std::end(kTrue), s) != std::end(kTrue)) {
    *out = true;
    return std::nullopt;
  }
  if (std::find(std::begin(kFalse), std::end(kFalse), s) != std::end(kFalse)) {
    *out = false;
    return std::nullopt;
  }
  return "parse error";
}

// A port number, or a URL ending in ":<port>" (tcp://10.0.0.1:11212), which is
// what Docker links and Kubernetes service env vars put in *_PORT.
SetError ParsePort(std::string_view s, int* out) {
  if (const size_t scheme = s.find("://"); scheme != std::string_view::npos) {
    const size_t colon = s.rfind(':');
    if (colon <= scheme + 2) return "URL has no port";
    std::string_view port = s.substr(colon + 1);
    if (const size_t slash = port.find('/'); slash != std::string_view::npos) {
      port = port.substr(0, slash);
    }
    s = port;
  }
  int port = 0;
  if (SetError e = ParseInt(s, &port)) return e;
  if (port < 0 || port > 65535) return "port must be between 0 and 65535";
  *out = port;
  return std::nullopt;
}

// -tls: a comma-separated list of memcache, http, grpc.
SetError ParseTlsFronts(std::string_view s, Config* c) {
  c->tls = {};
  c->tls_fronts_given = true;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    const std::string_view name = s.substr(0, comma);
    if (name == "memcache") {
      c->tls.memcache = true;
    } else if (name == "http") {
      c->tls.http = true;
    } else if (name == "grpc") {
      c->tls.grpc = true;
    } else if (!name.empty()) {
      return "unknown front \"" + std::string(name) + "\" (want memcache, http, grpc)";
    }
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

SetError ParseIdleTimeout(std::string_view s, std::chrono::milliseconds* out) {
  const std::optional<std::chrono::nanoseconds> d = ParseGoDuration(s);
  if (!d) return "invalid duration (want e.g. 600s, 10m, 1m30s or 0)";
  if (d->count() < 0) return "duration must not be negative";
  // Round up so that "1ns" does not silently become "no timeout".
  *out = std::chrono::ceil<std::chrono::milliseconds>(*d);
  return std::nullopt;
}

constexpr Flag kFlags[] = {
    {"worker-id", false, "uint", "worker id. must be unique.", "0",
     [](Config& c, std::string_view v) { return ParseUint32(v, &c.worker_id); }},
    {"port", false, "int", "port to listen. 0 disables the memcached listener.", "11212",
     [](Config& c, std::string_view v) { return ParsePort(v, &c.port); }},
    {"sock", false, "string", "unix domain socket to listen. ignore port option when set this.", "",
     [](Config& c, std::string_view v) -> SetError { c.sock = v; return std::nullopt; }},
    {"idle-timeout", false, "duration",
     "connection will be closed if there are no packets over the seconds. 0 means infinite.",
     "10m0s",
     [](Config& c, std::string_view v) { return ParseIdleTimeout(v, &c.idle_timeout); }},
    {"log-level", false, "string", "log level (panic, fatal, error, warning, info = Default, debug)",
     "info", [](Config& c, std::string_view v) -> SetError { c.log_level = v; return std::nullopt; }},
    {"log-format", false, "string", "log format (text, json)", "text",
     [](Config& c, std::string_view v) -> SetError { c.log_format = v; return std::nullopt; }},
    {"http-port", false, "int", "port to listen http server. 0 means disable.", "0",
     [](Config& c, std::string_view v) { return ParsePort(v, &c.http_port); }},
    {"grpc-port", false, "int", "port to listen grpc server. 0 means disable.", "0",
     [](Config& c, std::string_view v) { return ParsePort(v, &c.grpc_port); }},
    {"redis", false, "string", "URL of Redis for automated worker id allocation", "",
     [](Config& c, std::string_view v) -> SetError { c.redis = v; return std::nullopt; }},
    {"min-worker-id", false, "uint", "minimum automated worker id", "0",
     [](Config& c, std::string_view v) { return ParseUint32(v, &c.min_worker_id); }},
    {"max-worker-id", false, "uint", "maximum automated worker id", "0",
     [](Config& c, std::string_view v) { return ParseUint32(v, &c.max_worker_id); }},
    {"lease-expiry", false, "duration",
     "expiry of the Redis worker id lease key. Shorter frees a crashed holder's id sooner.",
     "10m0s",
     [](Config& c, std::string_view v) {
       c.lease_expiry_given = true;
       return ParseIdleTimeout(v, &c.lease_expiry);
     }},
    {"redis-tls-ca-file", false, "string",
     "PEM CA bundle that verifies a TLS Redis (rediss://...); default: the system's CA store", "",
     [](Config& c, std::string_view v) -> SetError { c.redis_tls_ca_file = v; return std::nullopt; }},
    {"redis-tls-cert-file", false, "string", "client certificate for a TLS Redis (mutual TLS), PEM", "",
     [](Config& c, std::string_view v) -> SetError { c.redis_tls_cert_file = v; return std::nullopt; }},
    {"redis-tls-key-file", false, "string", "private key of -redis-tls-cert-file, PEM", "",
     [](Config& c, std::string_view v) -> SetError { c.redis_tls_key_file = v; return std::nullopt; }},
    {"redis-tls-skip-verify", true, "",
     "do not verify a TLS Redis's certificate and name (insecure; logged as a warning)", "false",
     [](Config& c, std::string_view v) { return ParseBool(v, &c.redis_tls_skip_verify); }},
    {"redis-min-replicas", false, "uint",
     "lease writes count only once at least this many Redis replicas acknowledged them", "0",
     [](Config& c, std::string_view v) { return ParseUint32(v, &c.redis_min_replicas); }},
    {"redis-replica-timeout", false, "duration",
     "how long a lease write waits for every connected replica to acknowledge it (WAIT); "
     "0 does not wait (writes count once the primary has them)",
     "500ms",
     [](Config& c, std::string_view v) { return ParseIdleTimeout(v, &c.redis_replica_timeout); }},
    {"tls-cert-file", false, "string",
     "PEM certificate (then its chain) the TCP fronts serve TLS with; reloaded when it changes and on SIGUSR1", "",
     [](Config& c, std::string_view v) -> SetError { c.tls_cert_file = v; return std::nullopt; }},
    {"tls-key-file", false, "string", "PEM private key of -tls-cert-file", "",
     [](Config& c, std::string_view v) -> SetError { c.tls_key_file = v; return std::nullopt; }},
    {"tls-client-ca-file", false, "string",
     "PEM CA bundle: TLS clients must present a certificate it signed (mutual TLS)", "",
     [](Config& c, std::string_view v) -> SetError { c.tls_client_ca_file = v; return std::nullopt; }},
    {"tls", false, "string",
     "fronts that speak TLS, of memcache,http,grpc (default: every enabled TCP front once -tls-cert-file is set)", "",
     [](Config& c, std::string_view v) { return ParseTlsFronts(v, &c); }},
    {"tls-ca-file", false, "string",
     "PEM CA bundle that -health-check verifies a TLS front's certificate with (the chain, not the name: "
     "it dials 127.0.0.1); without it the check does not verify", "",
     [](Config& c, std::string_view v) -> SetError { c.tls_ca_file = v; return std::nullopt; }},
    {"tls-client-cert-file", false, "string",
     "PEM certificate -health-check presents to a front that asks for one (-tls-client-ca-file)", "",
     [](Config& c, std::string_view v) -> SetError { c.tls_client_cert_file = v; return std::nullopt; }},
    {"tls-client-key-file", false, "string", "PEM private key of -tls-client-cert-file", "",
     [](Config& c, std::string_view v) -> SetError { c.tls_client_key_file = v; return std::nullopt; }},
    {"state-file", false, "string",
     "file recording the last issued time of a static -worker-id, waited out at restart", "",
     [](Config& c, std::string_view v) -> SetError { c.state_file = v; return std::nullopt; }},
    {"js-safe-id", true, "", "issue IDs that fit in 53 bits (10 ms ticks, worker id 0..63)", "false",
     [](Config& c, std::string_view v) { return ParseBool(v, &c.js_safe_id); }},
    {"enable-pprof", true, "", "accepted for compatibility; not supported (Go profiler)", "false",
     [](Config& c, std::string_view v) { return ParseBool(v, &c.enable_pprof); }},
    {"enable-stats", true, "", "accepted for compatibility; not supported (Go runtime stats)", "false",
     [](Config& c, std::string_view v) { return ParseBool(v, &c.enable_stats); }},
    {"debug-port", false, "int", "port to listen for debug", "8080",
     [](Config& c, std::string_view v) { return ParsePort(v, &c.debug_port); }},
    {"version", true, "", "show version number", "false",
     [](Config& c, std::string_view v) { return ParseBool(v, &c.show_version); }},
    {"health-check", true, "",
     "check the server configured by the other flags (HTTP /healthz, else memcached get) and exit 0 or 1",
     "false", [](Config& c, std::string_view v) { return ParseBool(v, &c.health_check); }},
    {"threads", false, "int", "io threads. 0 means one per CPU core.", "0",
     [](Config& c, std::string_view v) { return ParseInt(v, &c.threads); }},
    {"lambda-extension", true, "",
     "run as an AWS Lambda extension (needs AWS_LAMBDA_RUNTIME_API): listen on 127.0.0.1 only, "
     "lease the worker id from -redis per environment",
     "false", [](Config& c, std::string_view v) { return ParseBool(v, &c.lambda_extension); }},
    {"shutdown-timeout", false, "duration",
     "on SIGTERM/SIGINT, how long in-flight requests may take before they are cut off "
     "(one deadline for every listener; idle connections close at once)",
     "5s",
     [](Config& c, std::string_view v) { return ParseIdleTimeout(v, &c.shutdown_timeout); }},
};

const Flag* FindFlag(std::string_view name) {
  for (const Flag& f : kFlags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string EnvName(std::string_view flag, bool upper) {
  std::string name(flag);
  for (char& c : name) {
    if (c == '-') c = '_';
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

// Joins pieces without `"literal" + std::string` temporaries, which trip GCC
// 12's -Wrestrict false positive (GCC bug 105329) under -O3.
std::string Cat(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (std::string_view p : pieces) out.append(p);
  return out;
}

std::string Quote(std::string_view s) { return Cat({"\"", s, "\""}); }

// Go's flag package exits 2 on usage errors; go-katsubushi exits 1 on
// configuration it rejects after parsing.
constexpr int kUsageExit = 2;
constexpr int kConfigExit = 1;

void ApplyEnv(const EnvLookup& env, ConfigResult* result) {
  for (const Flag& flag : kFlags) {
    const std::string names[] = {Cat({"KATSUBUSHI_", EnvName(flag.name, true)}),
                                 EnvName(flag.name, true), EnvName(flag.name, false)};
    for (size_t i = 0; i < std::size(names); ++i) {
      const std::optional<std::string> value = env(names[i]);
      if (!value || value->empty()) continue;
      if (SetError e = flag.set(result->config, *value)) {
        const std::string what = Cat({"invalid value ", Quote(*value), " for environment variable ",
                                      names[i], " (flag -", flag.name, "): ", *e});
        if (i == 0) {
          result->exit_code = kUsageExit;
          result->error = what;
          return;
        }
        result->warnings.push_back(Cat({what, "; ignored"}));
      }
      break;  // the first non-empty one decides, valid or not
    }
  }
}

void ParseFlags(std::span<const std::string_view> args, ConfigResult* result) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') return;  // first non-flag: stop, as Go
    const size_t dashes = arg[1] == '-' ? 2 : 1;
    if (dashes == 2 && arg.size() == 2) return;  // "--" terminates the flags
    std::string_view name = arg.substr(dashes);
    if (name.empty() || name[0] == '-' || name[0] == '=') {
      result->exit_code = kUsageExit;
      result->error = Cat({"bad flag syntax: ", arg});
      result->show_usage = true;
      return;
    }
    std::optional<std::string_view> value;
    if (const size_t eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      if (name == "h" || name == "help") {
        result->help = true;
        return;
      }
      result->exit_code = kUsageExit;
      result->error = Cat({"flag provided but not defined: -", name});
      result->show_usage = true;
      return;
    }
    if (!flag->is_bool && !value) {
      if (i + 1 >= args.size()) {
        result->exit_code = kUsageExit;
        result->error = Cat({"flag needs an argument: -", name});
        result->show_usage = true;
        return;
      }
      value = args[++i];
    }
    if (SetError e = flag->set(result->config, value.value_or("true"))) {
      result->exit_code = kUsageExit;
      result->error = Cat({flag->is_bool ? "invalid boolean value " : "invalid value ",
                           Quote(*value), " for flag -", name, ": ", *e});
      result->show_usage = true;
      return;
    }
  }
}

// Checks the TLS flags and settles which fronts speak TLS.
std::string ResolveTlsFronts(Config* c) {
  const bool certificate = !c->tls_cert_file.empty() || !c->tls_key_file.empty();
  if (c->tls_cert_file.empty() != c->tls_key_file.empty()) return "-tls-cert-file and -tls-key-file go together";
  if (c->tls_client_cert_file.empty() != c->tls_client_key_file.empty()) {
    return "-tls-client-cert-file and -tls-client-key-file go together";
  }
  if (!certificate) {
    if (!c->tls_client_ca_file.empty()) return "-tls-client-ca-file needs -tls-cert-file and -tls-key-file";
    if (c->tls_fronts_given && c->tls.any()) return "-tls needs -tls-cert-file and -tls-key-file";
    c->tls = {};
    return {};
  }
  const bool memcache_tcp = c->sock.empty() && c->port != 0;
  if (!c->tls_fronts_given) {
    c->tls = {memcache_tcp, c->http_port != 0, c->grpc_port != 0};
    return {};
  }
  if (c->tls.memcache && !memcache_tcp) {
    return c->sock.empty() ? "-tls names memcache, which is off (-port=0)"
                           : "-tls names memcache, but it listens on the unix socket -sock, which stays plaintext";
  }
  if (c->tls.http && c->http_port == 0) return "-tls names http, which is off (set -http-port)";
  if (c->tls.grpc && c->grpc_port == 0) return "-tls names grpc, which is off (set -grpc-port)";
  return {};
}

void Validate(ConfigResult* result) {
  Config& c = result->config;
  auto fail = [result](std::string message) {
    result->exit_code = kConfigExit;
    result->error = std::move(message);
  };
  static constexpr std::string_view kLevels[] = {"debug", "info",  "warning", "warn",
                                                 "error", "fatal", "panic"};
  if (std::find(std::begin(kLevels), std::end(kLevels), c.log_level) == std::end(kLevels)) {
    return fail(Cat({"invalid log level ", c.log_level}));
  }
  if (c.log_format != "text" && c.log_format != "json") {
    return fail(Cat({"invalid log format ", c.log_format, " (want text or json)"}));
  }
  if (c.threads < 0 || c.threads > Config::kMaxThreads) {
    return fail(Cat({"threads must be between 0 and ", std::to_string(Config::kMaxThreads)}));
  }
  const uint32_t max_worker = c.js_safe_id ? IdLayout::JsSafe().max_worker_id()
                                           : IdLayout::Default().max_worker_id();
  const std::string layout_note = c.js_safe_id ? " with -js-safe-id" : "";
  if (c.worker_id == 0 && c.redis.empty()) return fail("please set -worker-id or -redis");
  if (c.worker_id > max_worker) {
    return fail(Cat({"invalid worker id ", std::to_string(c.worker_id), ": must be at most ",
                     std::to_string(max_worker), layout_note}));
  }
  if (c.worker_id == 0) {  // worker ids leased through Redis
    if (c.min_worker_id == 0) c.min_worker_id = 1;
    if (c.max_worker_id == 0) c.max_worker_id = max_worker;
    if (c.min_worker_id > c.max_worker_id) {
      return fail("max-worker-id must be larger than min-worker-id");
    }
    if (c.max_worker_id > max_worker) {
      return fail(Cat({"max-worker-id must be at most ", std::to_string(max_worker), layout_note}));
    }
    // raus.New refuses a range of one id too; keep the Go behaviour.
    if (c.min_worker_id >= c.max_worker_id) return fail("max should be greater than min");
    Result<redis::RedisUrl> url = redis::ParseRedisUrl(c.redis);
    if (!url.ok()) return fail(Cat({"invalid -redis URL: ", url.status().message()}));
    const bool tls_flags = !c.redis_tls_ca_file.empty() || !c.redis_tls_cert_file.empty() ||
                           !c.redis_tls_key_file.empty() || c.redis_tls_skip_verify;
    if (tls_flags && !url->tls) {
      return fail("the -redis-tls-* flags need a TLS Redis URL (rediss://, redisclusters:// or rediss-sentinel://)");
    }
    if (c.redis_tls_cert_file.empty() != c.redis_tls_key_file.empty()) {
      return fail("-redis-tls-cert-file and -redis-tls-key-file go together");
    }
    if (c.redis_replica_timeout > Config::kMaxRedisReplicaTimeout) {
      return fail("redis-replica-timeout must be at most 10s");
    }
    if (c.lease_expiry < Config::kMinLeaseExpiry || c.lease_expiry > Config::kMaxLeaseExpiry) {
      return fail("lease-expiry must be between 2s and 1h");
    }
    if (!c.state_file.empty()) {
      return fail("-state-file is for a static -worker-id; with -redis the watermark is kept in Redis");
    }
  }
  const bool memcache_on = !c.sock.empty() || c.port != 0;
  if (!memcache_on && c.http_port == 0 && c.grpc_port == 0) return fail("no server is enabled");
  if (std::string error = ResolveTlsFronts(&c); !error.empty()) return fail(std::move(error));
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

ConfigResult ParseConfig(std::span<const std::string_view> args, const EnvLookup& env) {
  ConfigResult result;
  ApplyEnv(env, &result);
  if (result.exit_code != 0) return result;
  ParseFlags(args, &result);
  if (result.exit_code != 0 || result.help) return result;
  if (result.config.show_version) return result;  // Go prints it before any check
  // A health check runs beside the server with the same environment but not
  // its flags (HEALTHCHECK, ECS): it needs only the ports, not a worker id.
  if (result.config.health_check) {
    if (std::string error = ResolveTlsFronts(&result.config); !error.empty()) {
      result.exit_code = kConfigExit;
      result.error = std::move(error);
    }
    return result;
  }
  Validate(&result);
  return result;
}

std::string ConfigUsage() {
  std::string out = "Usage of katsubushi:\n";
  for (const Flag& f : kFlags) {
    out += Cat({"  -", f.name});
    if (!f.is_bool) out += Cat({" ", f.type});
    out += Cat({"\n    \t", f.help});
    if (!f.default_text.empty() && f.default_text != "false" && f.default_text != "0") {
      const std::string shown = f.type == "string" ? Quote(f.default_text) : std::string(f.default_text);
      out += Cat({" (default ", shown, ")"});
    }
    out += "\n";
  }
  out +=
      "Each flag can also be set by the environment variable KATSUBUSHI_<NAME>, <NAME> or <name>\n"
      "(dashes become underscores, e.g. KATSUBUSHI_WORKER_ID); flags override the environment.\n";
  return out;
}

}  // namespace katsubushi
