#include "katsubushi/config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "katsubushi/go_duration.h"

namespace katsubushi {
namespace {

using std::chrono::milliseconds;
using Env = std::map<std::string, std::string>;

ConfigResult Parse(std::vector<std::string_view> args, Env env = {}) {
  return ParseConfig(args, [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

Config ParseOk(std::vector<std::string_view> args, Env env = {}) {
  ConfigResult r = Parse(std::move(args), std::move(env));
  EXPECT_TRUE(r.ok()) << r.error;
  return r.config;
}

TEST(ConfigTest, DefaultsMatchGoKatsubushi) {
  const Config c = ParseOk({"-worker-id=1"});
  EXPECT_EQ(c.worker_id, 1u);
  EXPECT_EQ(c.port, 11212);
  EXPECT_EQ(c.sock, "");
  EXPECT_EQ(c.idle_timeout, milliseconds(600'000));
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_format, "text");
  EXPECT_EQ(c.http_port, 0);
  EXPECT_EQ(c.grpc_port, 0);
  EXPECT_EQ(c.redis, "");
  EXPECT_FALSE(c.js_safe_id);
  EXPECT_FALSE(c.enable_pprof);
  EXPECT_FALSE(c.enable_stats);
  EXPECT_EQ(c.debug_port, 8080);
  EXPECT_FALSE(c.show_version);
  EXPECT_EQ(c.threads, 0);
}

TEST(ConfigTest, EveryFlagInEverySyntax) {
  for (std::string_view dash : {"-", "--"}) {
    const std::string d(dash);
    const std::vector<std::string> joined = {
        d + "worker-id=5",       d + "port=1234",          d + "sock=/tmp/k.sock",
        d + "idle-timeout=1m30s", d + "log-level=debug",   d + "log-format=json",
        d + "http-port=8081",    d + "grpc-port=50051",    d + "redis=redis://r:6379/0",
        d + "min-worker-id=2",   d + "max-worker-id=9",    d + "js-safe-id",
        d + "enable-pprof",      d + "enable-stats=true",  d + "debug-port=9090",
        d + "threads=3"};
    std::vector<std::string_view> args(joined.begin(), joined.end());
    const Config c = ParseOk(args);
    EXPECT_EQ(c.worker_id, 5u);
    EXPECT_EQ(c.port, 1234);
    EXPECT_EQ(c.sock, "/tmp/k.sock");
    EXPECT_EQ(c.idle_timeout, milliseconds(90'000));
    EXPECT_EQ(c.log_level, "debug");
    EXPECT_EQ(c.log_format, "json");
    EXPECT_EQ(c.http_port, 8081);
    EXPECT_EQ(c.grpc_port, 50051);
    EXPECT_EQ(c.redis, "redis://r:6379/0");
    EXPECT_EQ(c.min_worker_id, 2u);
    EXPECT_EQ(c.max_worker_id, 9u);
    EXPECT_TRUE(c.js_safe_id);
    EXPECT_TRUE(c.enable_pprof);
    EXPECT_TRUE(c.enable_stats);
    EXPECT_EQ(c.debug_port, 9090);
    EXPECT_EQ(c.threads, 3);
  }
}

TEST(ConfigTest, SeparateValueForm) {
  const Config c = ParseOk({"-worker-id", "7", "--port", "4000", "-idle-timeout", "0"});
  EXPECT_EQ(c.worker_id, 7u);
  EXPECT_EQ(c.port, 4000);
  EXPECT_EQ(c.idle_timeout, milliseconds(0));
}

TEST(ConfigTest, BoolFlagNeverTakesTheNextArgument) {
  // Go: "-js-safe-id false" sets true and stops at the positional "false".
  const Config c = ParseOk({"-worker-id=1", "-js-safe-id", "false", "-port=1"});
  EXPECT_TRUE(c.js_safe_id);
  EXPECT_EQ(c.port, 11212);  // never reached: parsing stopped at "false"
  EXPECT_FALSE(ParseOk({"-worker-id=1", "-js-safe-id=false"}).js_safe_id);
}

TEST(ConfigTest, GoBoolSpellings) {
  for (const char* t : {"1", "t", "T", "TRUE", "true", "True"}) {
    const std::string arg = std::string("-enable-stats=") + t;
    EXPECT_TRUE(ParseOk({"-worker-id=1", arg}).enable_stats) << t;
  }
  for (const char* f : {"0", "f", "F", "FALSE", "false", "False"}) {
    const std::string arg = std::string("-enable-stats=") + f;
    EXPECT_FALSE(ParseOk({"-worker-id=1", "-enable-stats", arg}).enable_stats) << f;
  }
  const ConfigResult bad = Parse({"-worker-id=1", "-js-safe-id=yes"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.error, "invalid boolean value \"yes\" for flag -js-safe-id: parse error");
}

TEST(ConfigTest, ParsingStopsAtFirstNonFlagAndAfterDoubleDash) {
  EXPECT_EQ(ParseOk({"-worker-id=1", "extra", "-port=5"}).port, 11212);
  EXPECT_EQ(ParseOk({"-worker-id=1", "--", "-port=5"}).port, 11212);
}

TEST(ConfigTest, PortFlagsAcceptServiceLinkUrls) {
  const Config c = ParseOk({"-worker-id=1", "-port=tcp://10.0.0.1:11213",
                            "-http-port=tcp://172.17.0.2:8080/", "-grpc-port=tcp://[::1]:50051"});
  EXPECT_EQ(c.port, 11213);
  EXPECT_EQ(c.http_port, 8080);
  EXPECT_EQ(c.grpc_port, 50051);
  EXPECT_EQ(Parse({"-worker-id=1", "-port=tcp://host"}).exit_code, 2);
  EXPECT_EQ(Parse({"-worker-id=1", "-port=65536"}).exit_code, 2);
  EXPECT_EQ(Parse({"-worker-id=1", "-port=-1"}).exit_code, 2);
}

TEST(ConfigTest, BadValuesExitTwoWithOneClearLine) {
  struct Case {
    std::vector<std::string_view> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"-worker-id=1", "-port=abc"}, "invalid value \"abc\" for flag -port: parse error"},
      {{"-worker-id=x"}, "invalid value \"x\" for flag -worker-id: parse error"},
      {{"-worker-id=-1"}, "invalid value \"-1\" for flag -worker-id: parse error"},
      {{"-worker-id=1", "-idle-timeout=10"},
       "invalid value \"10\" for flag -idle-timeout: invalid duration (want e.g. 600s, 10m, 1m30s or 0)"},
      {{"-worker-id=1", "-idle-timeout=-5s"},
       "invalid value \"-5s\" for flag -idle-timeout: duration must not be negative"},
      {{"-worker-id=1", "-nope"}, "flag provided but not defined: -nope"},
      {{"-worker-id"}, "flag needs an argument: -worker-id"},
      {{"---worker-id=1"}, "bad flag syntax: ---worker-id=1"},
      {{"-=1"}, "bad flag syntax: -=1"},
  };
  for (const Case& c : cases) {
    const ConfigResult r = Parse(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.error;
    EXPECT_EQ(r.error, c.error);
    EXPECT_EQ(r.error.find('\n'), std::string::npos);
  }
}

TEST(ConfigTest, ValidationErrorsExitOne) {
  struct Case {
    std::vector<std::string_view> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{}, "please set -worker-id or -redis"},
      {{"-worker-id=0"}, "please set -worker-id or -redis"},
      {{"-worker-id=1024"}, "invalid worker id 1024: must be at most 1023"},
      {{"-worker-id=64", "-js-safe-id"}, "invalid worker id 64: must be at most 63 with -js-safe-id"},
      {{"-redis=redis://localhost", "-min-worker-id=10", "-max-worker-id=5"},
       "max-worker-id must be larger than min-worker-id"},
      {{"-redis=redis://localhost", "-max-worker-id=1024"}, "max-worker-id must be at most 1023"},
      {{"-redis=redis://localhost", "-js-safe-id", "-max-worker-id=64"},
       "max-worker-id must be at most 63 with -js-safe-id"},
      // raus refuses a one-id range; go-katsubushi exits 1 with its message.
      {{"-redis=redis://localhost", "-min-worker-id=5", "-max-worker-id=5"},
       "max should be greater than min"},
      {{"-redis=http://localhost"},
       "invalid -redis URL: invalid scheme: the Redis URL must start with redis://, rediss://, "
       "rediscluster://, redisclusters://, redis-sentinel:// or rediss-sentinel://"},
      {{"-redis=rediscluster://localhost/2"},
       "invalid -redis URL: database is not supported for redis cluster"},
      {{"-redis=redis://localhost", "-lease-expiry=1s"}, "lease-expiry must be between 2s and 1h"},
      {{"-redis=redis://localhost", "-redis-tls-ca-file=/ca.pem"},
       "the -redis-tls-* flags need a TLS Redis URL (rediss://, redisclusters:// or rediss-sentinel://)"},
      {{"-redis=rediss://localhost", "-redis-tls-cert-file=/c.pem"},
       "-redis-tls-cert-file and -redis-tls-key-file go together"},
      {{"-redis=rediss://localhost", "-redis-replica-timeout=11s"}, "redis-replica-timeout must be at most 10s"},
      {{"-redis=redis-sentinel://s1:26379/0?ns=kb"},
       "invalid -redis URL: a redis-sentinel:// URL needs the primary's name as #name"},
      {{"-redis=redis://localhost", "-state-file=/tmp/s"},
       "-state-file is for a static -worker-id; with -redis the watermark is kept in Redis"},
      {{"-worker-id=1", "-port=0"}, "no server is enabled"},
      {{"-worker-id=1", "-log-level=verbose"}, "invalid log level verbose"},
      {{"-worker-id=1", "-log-format=xml"}, "invalid log format xml (want text or json)"},
      {{"-worker-id=1", "-threads=-1"}, "threads must be between 0 and 1024"},
      {{"-worker-id=1", "-threads=1025"}, "threads must be between 0 and 1024"},
  };
  for (const Case& c : cases) {
    const ConfigResult r = Parse(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.error;
    EXPECT_EQ(r.error, c.error);
  }
}

TEST(ConfigTest, ListenerRulesAndRedisDefaults) {
  // Any one listener is enough.
  EXPECT_TRUE(Parse({"-worker-id=1", "-port=0", "-sock=/tmp/x.sock"}).ok());
  EXPECT_TRUE(Parse({"-worker-id=1", "-port=0", "-http-port=8080"}).ok());
  EXPECT_TRUE(Parse({"-worker-id=1", "-port=0", "-grpc-port=50051"}).ok());
  // With -redis, 0 bounds mean 1 and the layout's largest id.
  Config c = ParseOk({"-redis=redis://localhost:6379/0"});
  EXPECT_EQ(c.min_worker_id, 1u);
  EXPECT_EQ(c.max_worker_id, 1023u);
  c = ParseOk({"-redis=redis://localhost", "-js-safe-id"});
  EXPECT_EQ(c.max_worker_id, 63u);
  c = ParseOk({"-redis=redis://localhost", "-min-worker-id=5", "-max-worker-id=6"});
  EXPECT_EQ(c.min_worker_id, 5u);
  EXPECT_EQ(c.max_worker_id, 6u);
  EXPECT_EQ(c.lease_expiry, std::chrono::minutes(10));
  c = ParseOk({"-redis=redis://localhost", "-lease-expiry=3s"});
  EXPECT_EQ(c.lease_expiry, std::chrono::seconds(3));
  c = ParseOk({"-worker-id=3", "-state-file=/var/lib/katsubushi/state"});
  EXPECT_EQ(c.state_file, "/var/lib/katsubushi/state");
  for (uint32_t id : {1u, 1023u}) {
    const std::string arg = "-worker-id=" + std::to_string(id);
    EXPECT_EQ(ParseOk({arg}).worker_id, id);
  }
}

// The health check runs beside the server with its environment but not its
// flags: it needs the ports only, still parsed and checked as the server's.
TEST(ConfigTest, HealthCheckNeedsNoWorkerIdButValidPorts) {
  ConfigResult r = Parse({"-health-check", "-http-port=8080"});
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.config.health_check);
  EXPECT_EQ(r.config.http_port, 8080);
  r = Parse({"-health-check"}, {{"KATSUBUSHI_PORT", "11300"}});
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config.port, 11300);
  EXPECT_EQ(Parse({"-health-check", "-port=abc"}).exit_code, 2);
  EXPECT_EQ(Parse({"-health-check=false"}).exit_code, 1);  // the server's rules again
}

TEST(ConfigTest, VersionNeedsNoWorkerIdAndHelpExitsZero) {
  ConfigResult r = Parse({"-version"});
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.config.show_version);
  r = Parse({"-worker-id=1", "-version"});
  EXPECT_TRUE(r.config.show_version);
  for (std::string_view h : {"-h", "-help", "--help"}) {
    r = Parse({h});
    EXPECT_TRUE(r.help);
    EXPECT_EQ(r.exit_code, 0);
  }
  const std::string usage = ConfigUsage();
  for (const char* flag : {"-worker-id uint", "-port int", "-sock string", "-idle-timeout duration",
                           "-redis string", "-js-safe-id\n", "-version\n", "-threads int"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

TEST(ConfigTest, EnvironmentNamesAndPrecedence) {
  // Each name form works alone.
  EXPECT_EQ(ParseOk({}, {{"KATSUBUSHI_WORKER_ID", "3"}}).worker_id, 3u);
  EXPECT_EQ(ParseOk({}, {{"WORKER_ID", "4"}}).worker_id, 4u);
  EXPECT_EQ(ParseOk({}, {{"worker_id", "5"}}).worker_id, 5u);
  // KATSUBUSHI_X > X > x.
  const Env all = {{"KATSUBUSHI_WORKER_ID", "3"}, {"WORKER_ID", "4"}, {"worker_id", "5"}};
  EXPECT_EQ(ParseOk({}, all).worker_id, 3u);
  EXPECT_EQ(ParseOk({}, {{"WORKER_ID", "4"}, {"worker_id", "5"}}).worker_id, 4u);
  // Empty values are skipped.
  EXPECT_EQ(ParseOk({}, {{"KATSUBUSHI_WORKER_ID", ""}, {"WORKER_ID", "4"}}).worker_id, 4u);
  // Flags override the environment.
  EXPECT_EQ(ParseOk({"-worker-id=9"}, all).worker_id, 9u);
}

TEST(ConfigTest, EveryFlagHasEnvironmentVariables) {
  const Env env = {
      {"KATSUBUSHI_WORKER_ID", "6"},      {"KATSUBUSHI_PORT", "tcp://10.1.2.3:7000"},
      {"KATSUBUSHI_SOCK", "/run/k.sock"}, {"KATSUBUSHI_IDLE_TIMEOUT", "2m"},
      {"LOG_LEVEL", "error"},            {"log_format", "json"},
      {"KATSUBUSHI_HTTP_PORT", "8088"},   {"GRPC_PORT", "50052"},
      {"KATSUBUSHI_MIN_WORKER_ID", "3"},  {"KATSUBUSHI_MAX_WORKER_ID", "8"},
      {"KATSUBUSHI_JS_SAFE_ID", "true"},  {"ENABLE_PPROF", "1"},
      {"enable_stats", "t"},             {"KATSUBUSHI_DEBUG_PORT", "9999"},
      {"KATSUBUSHI_THREADS", "2"},
  };
  const Config c = ParseOk({}, env);
  EXPECT_EQ(c.worker_id, 6u);
  EXPECT_EQ(c.port, 7000);
  EXPECT_EQ(c.sock, "/run/k.sock");
  EXPECT_EQ(c.idle_timeout, milliseconds(120'000));
  EXPECT_EQ(c.log_level, "error");
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.http_port, 8088);
  EXPECT_EQ(c.grpc_port, 50052);
  EXPECT_EQ(c.min_worker_id, 3u);
  EXPECT_EQ(c.max_worker_id, 8u);
  EXPECT_TRUE(c.js_safe_id);
  EXPECT_TRUE(c.enable_pprof);
  EXPECT_TRUE(c.enable_stats);
  EXPECT_EQ(c.debug_port, 9999);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(ParseOk({}, {{"KATSUBUSHI_REDIS", "redis://r:6379"}}).redis, "redis://r:6379");
  EXPECT_TRUE(Parse({}, {{"KATSUBUSHI_VERSION", "true"}}).config.show_version);
}

TEST(ConfigTest, ShutdownTimeoutFlagAndEnvironment) {
  EXPECT_EQ(ParseOk({"-worker-id=1"}).shutdown_timeout, milliseconds(5'000));
  EXPECT_EQ(ParseOk({"-worker-id=1", "-shutdown-timeout=1500ms"}).shutdown_timeout, milliseconds(1'500));
  EXPECT_EQ(ParseOk({"-worker-id=1", "--shutdown-timeout", "0"}).shutdown_timeout, milliseconds(0));
  EXPECT_EQ(ParseOk({"-worker-id=1"}, {{"KATSUBUSHI_SHUTDOWN_TIMEOUT", "20s"}}).shutdown_timeout,
            milliseconds(20'000));
  EXPECT_EQ(ParseOk({"-worker-id=1", "-shutdown-timeout=2s"}, {{"KATSUBUSHI_SHUTDOWN_TIMEOUT", "20s"}})
                .shutdown_timeout,
            milliseconds(2'000));
  EXPECT_EQ(Parse({"-worker-id=1", "-shutdown-timeout=5"}).exit_code, 2);  // Go wants a unit
  EXPECT_EQ(Parse({"-worker-id=1", "-shutdown-timeout=-1s"}).exit_code, 2);
}

TEST(ConfigTest, RedisTlsAndReplicaFlags) {
  const Config defaults = ParseOk({"-redis=rediss://r:6380/0?ns=kb"});
  EXPECT_EQ(defaults.redis_replica_timeout, milliseconds(500));
  EXPECT_EQ(defaults.redis_min_replicas, 0u);
  EXPECT_FALSE(defaults.redis_tls_skip_verify);
  const Config c = ParseOk({"-redis=rediss://r:6380/0?ns=kb", "-redis-tls-ca-file=/ca.pem",
                            "-redis-tls-cert-file=/c.pem", "-redis-tls-key-file=/k.pem",
                            "-redis-tls-skip-verify", "-redis-min-replicas=2", "-redis-replica-timeout=0"});
  EXPECT_EQ(c.redis_tls_ca_file, "/ca.pem");
  EXPECT_EQ(c.redis_tls_cert_file, "/c.pem");
  EXPECT_EQ(c.redis_tls_key_file, "/k.pem");
  EXPECT_TRUE(c.redis_tls_skip_verify);
  EXPECT_EQ(c.redis_min_replicas, 2u);
  EXPECT_EQ(c.redis_replica_timeout, milliseconds(0));
  const Config env = ParseOk({"-redis=redis-sentinel://s1,s2/0?ns=kb#mymaster"},
                             {{"KATSUBUSHI_REDIS_REPLICA_TIMEOUT", "2s"}, {"KATSUBUSHI_REDIS_MIN_REPLICAS", "1"}});
  EXPECT_EQ(env.redis_replica_timeout, milliseconds(2'000));
  EXPECT_EQ(env.redis_min_replicas, 1u);
}

TEST(ConfigTest, BadPrefixedEnvIsFatalBadUnprefixedIsAWarning) {
  ConfigResult r = Parse({"-worker-id=1"}, {{"KATSUBUSHI_PORT", "abc"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.error,
            "invalid value \"abc\" for environment variable KATSUBUSHI_PORT (flag -port): parse error");

  // A platform's PORT=abc must not stop the server.
  r = Parse({"-worker-id=1"}, {{"PORT", "abc"}});
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config.port, 11212);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0],
            "invalid value \"abc\" for environment variable PORT (flag -port): parse error; ignored");
  // An invalid unprefixed value does not fall through to the lower-case name.
  r = Parse({"-worker-id=1"}, {{"PORT", "abc"}, {"port", "5"}});
  EXPECT_EQ(r.config.port, 11212);
  // A flag still wins over a broken unprefixed variable.
  EXPECT_EQ(ParseOk({"-worker-id=1", "-port=6"}, {{"PORT", "abc"}}).port, 6);
}

TEST(GoDurationTest, AcceptsGoSyntax) {
  using std::chrono::nanoseconds;
  const std::vector<std::pair<std::string_view, int64_t>> good = {
      {"0", 0},
      {"600s", 600'000'000'000},
      {"10m", 600'000'000'000},
      {"1m30s", 90'000'000'000},
      {"1.5h", 5'400'000'000'000},
      {"500ms", 500'000'000},
      {"2us", 2'000},
      {"2\xC2\xB5s", 2'000},
      {"2\xCE\xBCs", 2'000},
      {"3ns", 3},
      {"1h2m3s4ms5us6ns", 3'723'004'005'006},
      {".5s", 500'000'000},
      {"1.s", 1'000'000'000},
      {"+5s", 5'000'000'000},
      {"-5s", -5'000'000'000},
      {"2562047h", 2562047LL * 3'600'000'000'000},
  };
  for (const auto& [text, nanos] : good) {
    const auto d = ParseGoDuration(text);
    ASSERT_TRUE(d.has_value()) << text;
    EXPECT_EQ(d->count(), nanos) << text;
  }
}

TEST(GoDurationTest, RejectsWhatGoRejects) {
  for (std::string_view bad : {"", "10", "s", "1x", "1.5", ".s", "-", "1 s", "1s ", "3000000h",
                               "9223372036854775808ns", "1sm"}) {
    EXPECT_FALSE(ParseGoDuration(bad).has_value()) << bad;
  }
}

TEST(ConfigTest, TlsDefaultsToEveryEnabledTcpFront) {
  Config c = ParseOk({"-worker-id=1", "-http-port=8080", "-tls-cert-file=c.pem", "-tls-key-file=k.pem"});
  EXPECT_TRUE(c.tls.memcache);
  EXPECT_TRUE(c.tls.http);
  EXPECT_FALSE(c.tls.grpc);  // not enabled
  EXPECT_EQ(c.tls_cert_file, "c.pem");
  EXPECT_EQ(c.tls_key_file, "k.pem");
  // The unix socket stays plaintext.
  c = ParseOk({"-worker-id=1", "-sock=/tmp/k.sock", "-grpc-port=50051"},
              {{"KATSUBUSHI_TLS_CERT_FILE", "c.pem"}, {"KATSUBUSHI_TLS_KEY_FILE", "k.pem"}});
  EXPECT_FALSE(c.tls.memcache);
  EXPECT_TRUE(c.tls.grpc);
  // Without a certificate nothing speaks TLS.
  c = ParseOk({"-worker-id=1", "-http-port=8080"});
  EXPECT_FALSE(c.tls.any());
}

TEST(ConfigTest, TlsNamesTheFronts) {
  const Config c = ParseOk({"-worker-id=1", "-http-port=8080", "-grpc-port=50051", "-tls=http,grpc",
                            "-tls-cert-file=c.pem", "-tls-key-file=k.pem", "-tls-client-ca-file=ca.pem"});
  EXPECT_FALSE(c.tls.memcache);
  EXPECT_TRUE(c.tls.http);
  EXPECT_TRUE(c.tls.grpc);
  EXPECT_EQ(c.tls_client_ca_file, "ca.pem");
}

TEST(ConfigTest, TlsFlagsThatCannotWorkAreRefused) {
  const std::vector<std::pair<std::vector<std::string_view>, std::string>> cases = {
      {{"-tls-cert-file=c.pem"}, "-tls-cert-file and -tls-key-file go together"},
      {{"-tls-key-file=k.pem"}, "-tls-cert-file and -tls-key-file go together"},
      {{"-tls-client-ca-file=ca.pem"}, "-tls-client-ca-file needs"},
      {{"-tls=memcache"}, "-tls needs -tls-cert-file"},
      {{"-tls=grpc", "-tls-cert-file=c", "-tls-key-file=k"}, "-tls names grpc, which is off"},
      {{"-tls=http", "-tls-cert-file=c", "-tls-key-file=k"}, "-tls names http, which is off"},
      {{"-tls=memcache", "-sock=/tmp/s", "-tls-cert-file=c", "-tls-key-file=k"}, "stays plaintext"},
      {{"-tls-client-cert-file=c.pem"}, "-tls-client-cert-file and -tls-client-key-file go together"},
      {{"-tls-client-key-file=k.pem"}, "-tls-client-cert-file and -tls-client-key-file go together"},
  };
  for (const auto& [extra, message] : cases) {
    std::vector<std::string_view> args = {"-worker-id=1"};
    args.insert(args.end(), extra.begin(), extra.end());
    const ConfigResult r = Parse(args);
    EXPECT_FALSE(r.ok()) << extra[0];
    EXPECT_NE(r.error.find(message), std::string::npos) << r.error;
  }
  const ConfigResult r = Parse({"-worker-id=1", "-tls=memcache,smtp"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("unknown front \"smtp\""), std::string::npos) << r.error;
}

TEST(ConfigTest, HealthCheckKnowsWhichFrontsSpeakTls) {
  const ConfigResult r = Parse({"-health-check", "-http-port=8080"},
                               {{"KATSUBUSHI_TLS_CERT_FILE", "c.pem"}, {"KATSUBUSHI_TLS_KEY_FILE", "k.pem"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.config.tls.memcache);
  EXPECT_TRUE(r.config.tls.http);
}

TEST(ConfigTest, HealthCheckTakesItsTlsClientSettingsFromTheEnvironment) {
  const ConfigResult r = Parse({"-health-check"}, {{"KATSUBUSHI_TLS_CERT_FILE", "c.pem"},
                                                   {"KATSUBUSHI_TLS_KEY_FILE", "k.pem"},
                                                   {"KATSUBUSHI_TLS_CLIENT_CA_FILE", "clients.pem"},
                                                   {"KATSUBUSHI_TLS_CA_FILE", "ca.pem"},
                                                   {"KATSUBUSHI_TLS_CLIENT_CERT_FILE", "hc.pem"},
                                                   {"KATSUBUSHI_TLS_CLIENT_KEY_FILE", "hc.key"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config.tls_ca_file, "ca.pem");
  EXPECT_EQ(r.config.tls_client_cert_file, "hc.pem");
  EXPECT_EQ(r.config.tls_client_key_file, "hc.key");
  EXPECT_TRUE(r.config.tls.memcache);
  // The pair goes together for the check too.
  const ConfigResult half = Parse({"-health-check", "-tls-client-cert-file=hc.pem"});
  EXPECT_FALSE(half.ok());
  EXPECT_NE(half.error.find("go together"), std::string::npos) << half.error;
  // The server accepts them (its health check runs with the same environment).
  EXPECT_TRUE(Parse({"-worker-id=1", "-tls-ca-file=ca.pem", "-tls-client-cert-file=hc.pem",
                     "-tls-client-key-file=hc.key"}).ok());
}

}  // namespace
}  // namespace katsubushi
