// MemcacheServer: accepts memcached-protocol connections on TCP (IPv4 and IPv6)
// and/or a unix socket and runs each through a memcache::Session.
//
// Threading: `threads` workers, each with its own io_context run by one
// thread. The acceptors live on worker 0 and hand each new socket to the next
// worker round-robin; a connection then lives on that one thread for its whole
// life, so a session needs no strand and no lock, and a warm connection's
// read -> Process -> write cycle touches no shared state but the generator's
// CAS and the sharded stats counters.
//
// Lifetime: Start() binds and starts the threads; Stop() stops accepting,
// lets each connection finish the request it is answering, closes it, and
// joins the threads within `grace` (then forces them). The ServiceContext must
// outlive the server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "memcache/session.h"

namespace katsubushi::server {

struct ServerOptions {
  // Beyond this many open connections new ones are accepted and closed at once.
  static constexpr size_t kDefaultMaxConnections = 16384;

  bool listen_tcp = true;
  std::string tcp_address;       // empty: every address, IPv4 and IPv6
  uint16_t tcp_port = 11212;     // 0: an ephemeral port (see tcp_port())
  std::string unix_socket_path;  // empty: no unix socket
  std::chrono::milliseconds idle_timeout{600'000};  // 0: none
  size_t threads = 1;
  size_t max_connections = kDefaultMaxConnections;
};

class MemcacheServer {
 public:
  MemcacheServer(const memcache::ServiceContext& context, ServerOptions options);
  ~MemcacheServer();
  MemcacheServer(const MemcacheServer&) = delete;
  MemcacheServer& operator=(const MemcacheServer&) = delete;

  // Binds every listener and starts the worker threads.
  std::error_code Start();
  // The bound TCP port (useful after asking for port 0).
  uint16_t tcp_port() const { return bound_port_; }
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  size_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }
  uint64_t rejected_connections() const { return rejected_.load(std::memory_order_relaxed); }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t bound_port_ = 0;
  std::atomic<size_t> open_connections_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace katsubushi::server
