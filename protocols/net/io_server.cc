#include "net/io_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>

#include <spdlog/spdlog.h>

#include "net/listen.h"

namespace katsubushi::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;

// Pause before accepting again after an accept error (EMFILE and friends), so
// a full descriptor table does not become a busy loop.
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};

// A socket file left by a crashed process makes bind fail; remove it, but only
// if nobody answers on it (never steal a live server's socket).
void RemoveStaleUnixSocket(asio::io_context& io, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  local::socket probe(io);
  boost::system::error_code ec;
  probe.connect(local::endpoint(path), ec);
  if (ec == asio::error::connection_refused) ::unlink(path.c_str());
}

}  // namespace

Connection::Connection(Worker& worker) : worker_(worker) { worker_.connections_.insert(this); }

Connection::~Connection() {
  worker_.connections_.erase(this);
  worker_.server_.open_.fetch_sub(1, std::memory_order_relaxed);
}

IoServer::IoServer(IoServerOptions options, TcpHandler on_tcp, UnixHandler on_unix)
    : options_(std::move(options)), on_tcp_(std::move(on_tcp)), on_unix_(std::move(on_unix)) {
  const size_t threads = std::max<size_t>(1, options_.threads);
  for (size_t i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>(*this));
}

IoServer::~IoServer() {
  StopAccepting();
  CloseIdle();
  Drain(std::chrono::steady_clock::now());
}

boost::system::error_code IoServer::ListenTcp(const std::string& address, uint16_t port) {
  tcp::acceptor& acceptor = tcp_acceptor_.emplace(workers_[0]->io_);
  if (const auto ec = net::ListenTcp(acceptor, address, port)) return ec;
  tcp_port_ = acceptor.local_endpoint().port();
  return {};
}

boost::system::error_code IoServer::ListenUnix(const std::string& path) {
  RemoveStaleUnixSocket(workers_[0]->io_, path);
  local::acceptor& acceptor = unix_acceptor_.emplace(workers_[0]->io_);
  const local::endpoint endpoint(path);
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) unix_path_ = path;  // ours to unlink from now on
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  return ec;
}

Worker& IoServer::NextWorker() {
  Worker& w = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  return w;
}

template <typename Socket, typename Handler>
void IoServer::Adopt(Worker& worker, Socket socket, const Handler& handler) {
  if (open_.load(std::memory_order_relaxed) >= options_.max_connections) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("{}: connection limit {} reached; closing a new connection", options_.name,
                 options_.max_connections);
    return;  // the socket closes as it goes out of scope
  }
  open_.fetch_add(1, std::memory_order_relaxed);
  if constexpr (std::is_same_v<typename Socket::protocol_type, tcp>) {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
  }
  // The socket already belongs to its worker's io_context; start it there.
  // A stop sweep that ran on that worker before this got there closes it:
  // the connection has sent nothing we read, so it is idle.
  asio::post(worker.io_, [this, &worker, &handler, sock = std::move(socket)]() mutable {
    if (worker.stopping_) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      return;  // closes the socket
    }
    handler(worker, std::move(sock));
  });
}

template <typename Acceptor>
void IoServer::Accept(Acceptor& acceptor) {
  using Socket = typename Acceptor::protocol_type::socket::template rebind_executor<Executor>::other;
  Worker& target = NextWorker();
  acceptor.async_accept(target.io_, [this, &acceptor, &target](boost::system::error_code ec,
                                                               Socket socket) {
    if (!accepting_.load(std::memory_order_relaxed) || ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("{}: accept failed: {}; retrying", options_.name, ec.message());
      retry_timer_->expires_after(kAcceptRetryDelay);
      retry_timer_->async_wait([this, &acceptor](boost::system::error_code tec) {
        if (!tec && accepting_.load(std::memory_order_relaxed)) Accept(acceptor);
      });
      return;
    }
    if constexpr (std::is_same_v<typename Acceptor::protocol_type, tcp>) {
      Adopt(target, std::move(socket), on_tcp_);
    } else {
      Adopt(target, std::move(socket), on_unix_);
    }
    Accept(acceptor);
  });
}

void IoServer::Start() {
  if (started_) return;
  started_ = true;
  retry_timer_.emplace(workers_[0]->io_);
  accepting_.store(true, std::memory_order_relaxed);
  if (tcp_acceptor_) Accept(*tcp_acceptor_);
  if (unix_acceptor_) Accept(*unix_acceptor_);
  for (auto& w : workers_) {
    w->thread_ = StartIoThread(w->io_, options_.name, [this] {
      {
        std::lock_guard lock(finished_mutex_);
        ++finished_threads_;
      }
      finished_cv_.notify_all();
    });
  }
}

void IoServer::StopAccepting() {
  if (!started_) return;
  accepting_.store(false, std::memory_order_relaxed);
  asio::post(workers_[0]->io_, [this] {
    boost::system::error_code ignored;
    if (tcp_acceptor_) tcp_acceptor_->close(ignored);
    if (unix_acceptor_) unix_acceptor_->close(ignored);
    retry_timer_->cancel();
  });
}

void IoServer::CloseIdle() {
  if (!started_) return;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io_, [worker] {
      worker->stopping_ = true;
      // StopWhenIdle only cancels I/O; no connection is destroyed while we
      // iterate (their handlers run later).
      for (Connection* c : worker->connections_) c->StopWhenIdle();
      // With the listeners closed and every connection closing, the context
      // runs out of work when the last reply is written; run() then returns.
      worker->guard_.reset();
    });
  }
}

bool IoServer::Drain(Deadline deadline) {
  bool clean = true;
  if (started_) {
    started_ = false;
    {
      std::unique_lock lock(finished_mutex_);
      clean = finished_cv_.wait_until(lock, deadline,
                                      [this] { return finished_threads_ == workers_.size(); });
    }
    for (auto& w : workers_) w->io_.stop();
    for (auto& w : workers_) {
      if (w->thread_.joinable()) w->thread_.join();
    }
  }
  tcp_acceptor_.reset();
  if (unix_acceptor_) {
    unix_acceptor_.reset();
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
    unix_path_.clear();
  }
  retry_timer_.reset();
  workers_.clear();  // destroys what a forced stop left pending
  return clean;
}

}  // namespace katsubushi::net
