// HttpServer: the HTTP front (Boost.Beast) serving Route() on -http-port.
//
// Listening, the worker threads and the stop are net::IoServer's (see
// io_server.h): each connection lives on one worker thread. A connection
// reads one request at a time (HTTP/1.1 keep-alive and pipelining: pipelined
// requests wait in the read buffer), answers it, and reads the next. The wait
// for a request's first byte is bounded by the idle timeout (-idle-timeout,
// as memcached connections): a load balancer keeps idle connections to its
// targets open for a while (AWS's ALB 60 s) and a target must not close one
// first, or the balancer may send a request onto a connection being closed
// and answer its client 502. Once a request's first byte has arrived, the
// whole request must arrive within kRequestTimeout, so a slow client cannot
// hold a connection; headers and bodies are bounded too.
//
// Start() binds and starts the threads; the net::Front stop methods (or
// net::Stop) end it: a keep-alive connection waiting for its next request, or
// with only part of one, is idle and closed at once; a request received whole
// is answered first. The HttpContext must outlive the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "http/router.h"
#include "katsubushi/tls/tls_server.h"
#include "katsubushi/config.h"
#include "net/front.h"
#include "net/io_server.h"
#include "net/tls_acceptor.h"

namespace katsubushi::http {

struct HttpOptions {
  // A request line and headers above this are refused (431); ours are tiny.
  static constexpr uint32_t kMaxHeaderBytes = 8 * 1024;
  // Requests carry no body here; anything above is refused (413).
  static constexpr uint64_t kMaxBodyBytes = 4 * 1024;
  // From a request's first byte to its last.
  static constexpr std::chrono::milliseconds kRequestTimeout{30'000};
  static constexpr size_t kMaxConnections = net::IoServerOptions::kDefaultMaxConnections;

  std::string address;  // empty: every address, IPv4 and IPv6
  uint16_t port = 0;    // 0: an ephemeral port (see port())
  size_t threads = 1;
  std::chrono::milliseconds request_timeout = kRequestTimeout;
  // The wait for the next request on a connection (-idle-timeout); 0: none.
  std::chrono::milliseconds idle_timeout = Config::kDefaultIdleTimeout;
  size_t max_connections = kMaxConnections;
  // Set: HTTPS with this source's current context (ALPN http/1.1). Null: plaintext.
  std::shared_ptr<tls::ServerContextSource> tls;
};

class HttpServer final : public net::IoFront {
 public:
  HttpServer(const HttpContext& context, HttpOptions options);
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::error_code Start() override;
  uint16_t port() const { return io_.tcp_port(); }

 private:
  const HttpContext& context_;
  const HttpOptions options_;
  std::optional<net::TlsAcceptor> tls_;  // set when options_.tls is
};

}  // namespace katsubushi::http
