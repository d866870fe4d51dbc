// HttpServer: the HTTP front (Boost.Beast) serving Route() on -http-port.
//
// One io_context run by `threads` threads; each connection runs on its own
// strand. A connection reads one request at a time (HTTP/1.1 keep-alive and
// pipelining: pipelined requests wait in the read buffer), answers it, and
// reads the next. Every read of a request is bounded by kRequestTimeout, so a
// slow or silent client cannot hold a connection; headers and bodies are
// bounded too.
//
// Start() binds and starts the threads; Stop() stops accepting, lets each
// connection finish the response it is writing, and joins the threads. The
// HttpContext must outlive the server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "http/router.h"

namespace katsubushi::http {

struct HttpOptions {
  // A request line and headers above this are refused (431); ours are tiny.
  static constexpr uint32_t kMaxHeaderBytes = 8 * 1024;
  // Requests carry no body here; anything above is refused (413).
  static constexpr uint64_t kMaxBodyBytes = 4 * 1024;
  // From the start of a request (or of the wait for the next one on a
  // keep-alive connection) to its last byte.
  static constexpr std::chrono::milliseconds kRequestTimeout{30'000};
  static constexpr size_t kMaxConnections = 16384;

  std::string address;  // empty: every address, IPv4 and IPv6
  uint16_t port = 0;    // 0: an ephemeral port (see port())
  size_t threads = 1;
  std::chrono::milliseconds request_timeout = kRequestTimeout;
  size_t max_connections = kMaxConnections;
};

class HttpServer {
 public:
  HttpServer(const HttpContext& context, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::error_code Start();
  uint16_t port() const { return bound_port_; }
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  uint64_t rejected_connections() const { return rejected_.load(std::memory_order_relaxed); }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t bound_port_ = 0;
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace katsubushi::http
