#include "fronts.h"

#include <spdlog/spdlog.h>

#include "grpc/core_backend.h"
#include "katsubushi/limits.h"
#include "katsubushi/tls/certificate_store.h"
#include "katsubushi/tls/tls_server.h"
#include "reload_signal.h"
#include "grpc/grpc_front.h"
#include "http/http_server.h"
#include "katsubushi/version.h"
#include "memcache/memcache_server.h"
#include "memcache/session.h"
#include "net/front.h"

namespace katsubushi {

struct Fronts::Contexts {
  memcache::ServiceContext memcached;
  http::HttpContext http;
};

Fronts::Fronts(const Config& config, GeneratorCore& generator, Stats& stats, FrontsSetup setup)
    : config_(config),
      setup_(std::move(setup)),
      threads_(net::IoThreads(config.threads)),
      where_(setup_.address.empty() ? "[::]" : setup_.address),
      contexts_(new Contexts{{generator, stats, kVersion},
                             {generator, stats, kVersion, setup_.health, {}, setup_.extra_metrics}}) {
  std::shared_ptr<tls::ServerContextSource> memcached_tls, http_tls;
  if (config.tls.any()) {
    certificates_ = tls::CertificateStore::Open(
        {config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file}, &tls_error_);
    if (certificates_) {
      stats.TlsCertificateLoaded(certificates_->current()->not_after_unix, /*reloaded=*/false);
      certificates_->SetListener([&stats](const tls::CertificateSet* loaded, const std::string&) {
        if (loaded != nullptr) {
          stats.TlsCertificateLoaded(loaded->not_after_unix, /*reloaded=*/true);
        } else {
          stats.CountTlsReloadFailure();
        }
      });
      if (config.tls.memcache) memcached_tls = tls::ServerContextSource::Make(*certificates_, {}, &tls_error_);
      if (config.tls.http && tls_error_.empty()) {
        http_tls = tls::ServerContextSource::Make(*certificates_, {"http/1.1"}, &tls_error_);
      }
    }
  }
  memcache::ServerOptions memcached;
  memcached.tls = memcached_tls;
  memcached.listen_tcp = config.sock.empty() && config.port != 0;
  memcached.tcp_address = setup_.address;
  memcached.tcp_port = static_cast<uint16_t>(config.port);
  memcached.unix_socket_path = config.sock;
  memcached.idle_timeout = config.idle_timeout;
  memcached.threads = threads_.cpus;
  if (memcached.listen_tcp || !memcached.unix_socket_path.empty()) {
    memcached_ = std::make_unique<memcache::MemcacheServer>(contexts_->memcached, memcached);
  }
  if (config.http_port != 0) {
    http::HttpOptions options;
    options.address = setup_.address;
    options.port = static_cast<uint16_t>(config.http_port);
    options.threads = threads_.cpus;
    options.idle_timeout = config.idle_timeout;
    options.tls = http_tls;
    http_ = std::make_unique<http::HttpServer>(contexts_->http, options);
  }
  if (config.grpc_port != 0 && setup_.serve_grpc) {
    grpc_backend_ = std::make_unique<grpc_api::CoreBackend>(generator, stats, kVersion, setup_.health,
                                                            config.tls.grpc ? certificates_.get() : nullptr);
  }
}

Fronts::~Fronts() { Stop(std::chrono::milliseconds(0)); }

std::string Fronts::Start() {
  spdlog::info("{} thread{}: {}", threads_.cpus, threads_.cpus == 1 ? "" : "s", threads_.source);
  auto fail = [this](std::string reason) {
    Stop(std::chrono::milliseconds(0));
    return reason;
  };
  if (!tls_error_.empty()) return fail("TLS: " + tls_error_);
  if (certificates_) {
    const auto set = certificates_->current();
    spdlog::info("TLS on {}{}{}with {} (serial {}){}", config_.tls.memcache ? "memcached " : "",
                 config_.tls.http ? "HTTP " : "", config_.tls.grpc ? "gRPC " : "", config_.tls_cert_file,
                 set->serial_hex, config_.tls_client_ca_file.empty() ? "" : ", client certificates required");
    certificates_->Watch();
    reload_signal_ = std::make_unique<ReloadSignal>([store = certificates_.get()] {
      if (store->Reload() == tls::CertificateStore::ReloadResult::kUnchanged) {
        spdlog::info("SIGUSR1: the TLS certificate files are unchanged");
      }
    });
  }
  if (memcached_) {
    const std::string at = config_.sock.empty() ? where_ + ":" + std::to_string(config_.port) : config_.sock;
    if (std::error_code ec = memcached_->Start()) {
      return fail("cannot listen for memcached on " + at + ": " + ec.message());
    }
    started_.push_back(memcached_.get());
    spdlog::info("Listening server at {}",
                 config_.sock.empty() ? where_ + ":" + std::to_string(memcached_->tcp_port()) : at);
  }
  if (http_) {
    if (std::error_code ec = http_->Start()) {
      return fail("cannot listen for HTTP on " + where_ + ":" + std::to_string(config_.http_port) +
                  ": " + ec.message());
    }
    started_.push_back(http_.get());
    spdlog::info("Listening HTTP server at {}:{}", where_, http_->port());
  }
  if (config_.grpc_port != 0 && !setup_.serve_grpc) {
    spdlog::warn("-grpc-port is not served in this mode");
  }
  if (grpc_backend_) {
    grpc_api::GrpcOptions options;
    options.address = setup_.address;
    options.port = static_cast<uint16_t>(config_.grpc_port);
    options.threads = threads_.cpus;
    options.tls = config_.tls.grpc && certificates_ != nullptr;
    options.handshake_timeout = TlsHandshakeTimeout(config_.idle_timeout);
    std::string error;
    grpc_ = grpc_api::LoadGrpcFront(*grpc_backend_, options, &error);
    if (!grpc_) return fail("gRPC: " + error);
    if (std::error_code ec = grpc_->Start()) {
      return fail("gRPC: cannot listen on " + where_ + ":" + std::to_string(config_.grpc_port) + ": " +
                  ec.message());
    }
    started_.push_back(grpc_.get());
    spdlog::info("Listening gRPC server at {}:{}", where_, grpc_->port());
  }
  return {};
}

bool Fronts::Stop(std::chrono::milliseconds timeout) {
  const bool clean = net::StopAll(started_, timeout);
  started_.clear();
  reload_signal_.reset();
  if (certificates_) certificates_->StopWatching();
  return clean;
}

uint16_t Fronts::memcached_port() const {
  return memcached_ && config_.sock.empty() ? memcached_->tcp_port() : 0;
}
uint16_t Fronts::http_port() const { return http_ ? http_->port() : 0; }
uint16_t Fronts::grpc_port() const { return grpc_ ? grpc_->port() : 0; }

}  // namespace katsubushi
