// Fronts: the memcached, HTTP and gRPC fronts of one process, built from the
// Config the one way for every mode that listens (the server, the Lambda
// extension): the same options from the same flags, the same io thread count
// (net::IoThreads: -threads, else the CPUs the process may use), started in
// order and stopped together to one deadline (net::StopAll). With
// -tls-cert-file, the fronts -tls names speak TLS with one CertificateStore.
//
// A mode says only what differs: where the TCP fronts listen, whether gRPC
// is served, and the HTTP front's health check and extra metrics.
//
// Thread safety: one thread builds, starts and stops it. Ownership: the
// generator and stats must outlive it; the fronts live inside it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "katsubushi/config.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"
#include "katsubushi/status.h"
#include "net/usable_cpus.h"

namespace katsubushi {

namespace memcache {
class MemcacheServer;
}
namespace http {
class HttpServer;
}
namespace grpc_api {
class CoreBackend;
class GrpcFront;
}
namespace net {
class Front;
}
namespace tls {
class CertificateStore;
}
class ReloadSignal;

struct FrontsSetup {
  // Where the TCP fronts listen: empty = every address, IPv4 and IPv6 (the
  // server); a literal such as "127.0.0.1" (the extension).
  std::string address;
  bool serve_grpc = true;
  // /healthz's check (empty: the generator's own) and more /metrics text.
  std::function<Status()> health;
  std::function<std::string()> extra_metrics;
};

class Fronts {
 public:
  Fronts(const Config& config, GeneratorCore& generator, Stats& stats, FrontsSetup setup);
  // Stops whatever is still running, at once.
  ~Fronts();
  Fronts(const Fronts&) = delete;
  Fronts& operator=(const Fronts&) = delete;

  // Logs the thread count and its source, then starts every enabled front in
  // turn, logging where each listens. On a failure it stops those it started
  // and returns the reason ("cannot listen for HTTP on [::]:8080: ...");
  // an empty string when all started.
  std::string Start();
  // Stops every started front to one deadline `timeout` from now; true when
  // nothing had to be cut off.
  bool Stop(std::chrono::milliseconds timeout);

  // Bound ports (after Start), 0 for a front that is off.
  uint16_t memcached_port() const;
  uint16_t http_port() const;
  uint16_t grpc_port() const;
  // Io threads of each front, and why that many.
  const net::CpuBudget& threads() const { return threads_; }
  // The TLS certificates the fronts serve (null without -tls-cert-file).
  tls::CertificateStore* certificates() const { return certificates_.get(); }

 private:
  const Config& config_;
  const FrontsSetup setup_;
  const net::CpuBudget threads_;
  const std::string where_;  // the address as logged: "[::]" or the literal
  // TLS: the certificates (watched from Start() on, and reloaded on
  // SIGUSR1), or why they did not load (Start() fails with it).
  std::unique_ptr<tls::CertificateStore> certificates_;
  std::string tls_error_;
  std::unique_ptr<ReloadSignal> reload_signal_;
  // What the fronts were built with; they keep references to these.
  struct Contexts;
  std::unique_ptr<Contexts> contexts_;
  std::unique_ptr<memcache::MemcacheServer> memcached_;
  std::unique_ptr<http::HttpServer> http_;
  std::unique_ptr<grpc_api::CoreBackend> grpc_backend_;
  std::unique_ptr<grpc_api::GrpcFront> grpc_;
  // Every front that started, in start order.
  std::vector<net::Front*> started_;
};

}  // namespace katsubushi
