// Backend: what the gRPC services need from the core, behind an interface.
//
// Why the indirection: proto package `katsubushi` (fixed by go-katsubushi's
// wire contract: methods are /katsubushi.Generator/Fetch ...) makes protoc
// generate classes named katsubushi::Generator and katsubushi::Stats, and
// katsubushi::Stats is also our core's statistics class (the embedding API
// is katsubushi::Generator too). So no translation unit may see both: the
// service code includes the generated headers and this file, and
// core_backend.cc, which implements it, includes the core and not them.
//
// Thread safety: implementations must be callable from any gRPC thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "katsubushi/status.h"
#include "katsubushi/tls_handshake_failure.h"

namespace katsubushi::tls {
struct CertificateSet;
}

namespace katsubushi::grpc_api {

// go-katsubushi's StatsResponse fields.
struct StatsFields {
  int64_t pid = 0;
  int64_t uptime = 0;
  int64_t time = 0;
  std::string version;
  int64_t curr_connections = 0;
  int64_t total_connections = 0;
  int64_t cmd_get = 0;
  int64_t get_hits = 0;
  int64_t get_misses = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Issue IDs and count them as the gRPC front's.
  virtual Result<uint64_t> NextId() = 0;
  virtual Status NextIds(std::span<uint64_t> out) = 0;
  virtual StatsFields GetStats() = 0;
  // A call answered `duration` after its request arrived (the request
  // received from the completion queue until the reply's write completed).
  virtual void ObserveDuration(std::chrono::nanoseconds duration) = 0;
  // Whether IDs can be issued now (grpc.health.v1 SERVING).
  virtual Status Health() = 0;
  // What the reply coalescing did in a batch (reply_coalescer.h), for
  // /metrics: so that a gRPC that stops naming channels "fd:<n>" shows.
  virtual void CountReplies(uint64_t corked, uint64_t uncorkable) {
    (void)corked;
    (void)uncorkable;
  }

  // TLS (GrpcOptions::tls): the certificate set new connections take, and
  // its generation, which moves when the files were loaded again (compared
  // on every new connection, so it must be cheap). Null and 0 without TLS.
  virtual std::shared_ptr<const tls::CertificateSet> Certificates() { return nullptr; }
  virtual uint64_t CertificateGeneration() { return 0; }
  // A connection's TLS handshake finished, or failed and why; or failed in
  // gRPC's own handshake with this OpenSSL error code (grpc_log.h).
  virtual void CountTlsHandshake() {}
  virtual void CountTlsHandshakeFailure(TlsHandshakeFailure reason) { (void)reason; }
  virtual void CountTlsHandshakeError(unsigned long openssl_error) { (void)openssl_error; }

  // A line gRPC logged (grpc_log.h), in the process's log.
  enum class LogLevel { kDebug, kInfo, kError };
  virtual void Log(LogLevel level, std::string_view text) {
    (void)level;
    (void)text;
  }
};

}  // namespace katsubushi::grpc_api
