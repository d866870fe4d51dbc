// IoServer: the listener, io-thread worker pool and drain shared by the fronts
// that run on Asio (memcached, HTTP). A front supplies what to do with an
// accepted socket; the IoServer owns everything else: binding, the accept
// loop (with its connection limit and its retry after EMFILE), the workers,
// and the stop (StopAccepting, CloseIdle, Drain of net::Front).
//
// Threading: `threads` workers, each an io_context run by one thread. The
// listeners live on worker 0 and hand each accepted socket to the next worker
// round-robin; the front's handler runs on that worker's thread, and the
// connection then lives on that one thread for its whole life, so it needs no
// strand and no lock. Only one thread starts or completes I/O on a worker's
// sockets (others post to it and register accepted sockets), so the reactor's
// per-descriptor I/O lock is turned off (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO).
//
// Stop: StopAccepting() closes the listeners on worker 0. CloseIdle() asks
// every live connection, on its own thread, to close when it has no reply to
// write, and marks the worker stopping: a socket accepted before the listeners
// closed but handed over after that sweep is closed instead of started (the
// accept-at-signal race). Drain() waits for the workers to run out of work,
// then stops what is left at the deadline and joins the threads.
//
// Ownership: the IoServer outlives its workers and they outlive their
// connections; a Connection registers with its Worker for its whole life.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "net/front.h"

namespace katsubushi::net {

// Sockets use the concrete io_context executor: Asio's default
// any_io_executor would add type erasure and reference counting to every
// operation on a connection.
using Executor = boost::asio::io_context::executor_type;
using TcpSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using UnixSocket = boost::asio::basic_stream_socket<boost::asio::local::stream_protocol, Executor>;

class Connection;
class IoServer;

// One io thread and the connections it runs.
class Worker {
 public:
  explicit Worker(IoServer& server) : server_(server) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  boost::asio::io_context& io() { return io_; }

 private:
  friend class Connection;
  friend class IoServer;

  IoServer& server_;
  // Declared before `io_` so it is destroyed after it: destroying `io_`
  // destroys pending handlers, and with them connections that unregister
  // themselves here. This worker's thread only.
  std::unordered_set<Connection*> connections_;
  bool stopping_ = false;  // this worker's thread only; set by CloseIdle's sweep
  boost::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::optional<boost::asio::executor_work_guard<Executor>> guard_{io_.get_executor()};
  std::thread thread_;
};

// Base of a front's connection: registers it with its worker for its whole
// life (so the stop sweep finds it) and counts it as open until destroyed.
// Constructed and destroyed on the worker's thread (or after the threads
// are joined).
class Connection {
 public:
  explicit Connection(Worker& worker);
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The server is stopping: close now unless a reply is being written, and
  // then close as soon as it is. Called on the worker's thread.
  virtual void StopWhenIdle() = 0;

 protected:
  Worker& worker() const { return worker_; }

 private:
  Worker& worker_;
};

struct IoServerOptions {
  static constexpr size_t kDefaultMaxConnections = 16384;

  std::string name;  // in log lines: "memcached", "http"
  size_t threads = 1;
  // Beyond this many open connections new ones are accepted and closed at once.
  size_t max_connections = kDefaultMaxConnections;
};

class IoServer {
 public:
  // Called on the chosen worker's thread with a socket that belongs to its
  // io_context; the handler makes a Connection of it (or drops it).
  using TcpHandler = std::function<void(Worker&, TcpSocket)>;
  using UnixHandler = std::function<void(Worker&, UnixSocket)>;

  IoServer(IoServerOptions options, TcpHandler on_tcp, UnixHandler on_unix = {});
  // Stops at once if still running (no grace).
  ~IoServer();
  IoServer(const IoServer&) = delete;
  IoServer& operator=(const IoServer&) = delete;

  // Before Start(). An empty address is every address (IPv4 and IPv6); port
  // 0 picks one (see tcp_port()).
  boost::system::error_code ListenTcp(const std::string& address, uint16_t port);
  // Before Start(). Removes a stale socket file nobody answers on first.
  boost::system::error_code ListenUnix(const std::string& path);
  uint16_t tcp_port() const { return tcp_port_; }

  // Starts accepting and the worker threads.
  void Start();
  // net::Front's stop, in this order.
  void StopAccepting();
  void CloseIdle();
  bool Drain(Deadline deadline);

  size_t open_connections() const { return open_.load(std::memory_order_relaxed); }
  uint64_t rejected_connections() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  friend class Connection;

  Worker& NextWorker();
  template <typename Acceptor>
  void Accept(Acceptor& acceptor);
  template <typename Socket, typename Handler>
  void Adopt(Worker& worker, Socket socket, const Handler& handler);

  const IoServerOptions options_;
  const TcpHandler on_tcp_;
  const UnixHandler on_unix_;
  // Relaxed: a gauge and a limit check, ordered with nothing else.
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> rejected_{0};
  // Destroyed before the counters above, which its connections update.
  std::vector<std::unique_ptr<Worker>> workers_;
  size_t next_worker_ = 0;  // worker 0's thread only
  std::optional<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::optional<boost::asio::local::stream_protocol::acceptor> unix_acceptor_;
  std::string unix_path_;
  std::optional<boost::asio::steady_timer> retry_timer_;
  uint16_t tcp_port_ = 0;
  // Read by accept handlers on worker 0; written by StopAccepting().
  std::atomic<bool> accepting_{false};
  bool started_ = false;  // the stopping thread only
  std::mutex finished_mutex_;
  std::condition_variable finished_cv_;
  size_t finished_threads_ = 0;  // guarded by finished_mutex_
};

// A front whose connections run on an IoServer (memcached, HTTP): its stop
// is the IoServer's.
class IoFront : public Front {
 public:
  void StopAccepting() override { io_.StopAccepting(); }
  void CloseIdle() override { io_.CloseIdle(); }
  bool Drain(Deadline deadline) override { return io_.Drain(deadline); }

  size_t open_connections() const { return io_.open_connections(); }
  uint64_t rejected_connections() const { return io_.rejected_connections(); }

 protected:
  IoFront(IoServerOptions options, IoServer::TcpHandler on_tcp, IoServer::UnixHandler on_unix = {})
      : io_(std::move(options), std::move(on_tcp), std::move(on_unix)) {}

  IoServer io_;
};

}  // namespace katsubushi::net
