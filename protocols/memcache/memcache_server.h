// MemcacheServer: the memcached front. Accepts memcached-protocol connections
// on TCP (IPv4 and IPv6) and/or a unix socket and runs each through a
// memcache::Session. Listening, the worker threads and the stop are
// net::IoServer's (see io_server.h for the threading); this file is only the
// connection: read, Session::Process, write, and the idle timeout.
//
// A warm connection's read -> Process -> write cycle touches no shared state
// but the generator's CAS and the sharded stats counters.
//
// Lifetime: Start() binds and starts the threads; the net::Front stop methods
// (or net::Stop) end it. The ServiceContext must outlive the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "katsubushi/tls/tls_server.h"
#include "memcache/session.h"
#include "net/front.h"
#include "net/io_server.h"
#include "net/tls_acceptor.h"

namespace katsubushi::memcache {

struct ServerOptions {
  static constexpr size_t kDefaultMaxConnections = net::IoServerOptions::kDefaultMaxConnections;

  bool listen_tcp = true;
  std::string tcp_address;       // empty: every address, IPv4 and IPv6
  uint16_t tcp_port = 11212;     // 0: an ephemeral port (see tcp_port())
  std::string unix_socket_path;  // empty: no unix socket
  std::chrono::milliseconds idle_timeout{600'000};  // 0: none
  size_t threads = 1;
  size_t max_connections = kDefaultMaxConnections;
  // Set: the TCP listener speaks TLS with this source's current context (the
  // unix socket stays plaintext). Null: plaintext.
  std::shared_ptr<tls::ServerContextSource> tls;
};

class MemcacheServer final : public net::IoFront {
 public:
  MemcacheServer(const ServiceContext& context, ServerOptions options);
  MemcacheServer(const MemcacheServer&) = delete;
  MemcacheServer& operator=(const MemcacheServer&) = delete;

  // Binds every listener and starts the worker threads.
  std::error_code Start() override;
  // The bound TCP port (useful after asking for port 0).
  uint16_t tcp_port() const { return io_.tcp_port(); }

 private:
  const ServerOptions options_;
  std::optional<net::TlsAcceptor> tls_;  // set when options_.tls is
};

}  // namespace katsubushi::memcache
