#include "server/memcache_server.h"

#include "memcache/connection_buffers.h"
#include "net/listen.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_set>

#include <spdlog/spdlog.h>

namespace katsubushi::server {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

// Pause before accepting again after an accept error (EMFILE and friends), so
// a full descriptor table does not become a busy loop.
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  // Server shutdown: stop reading; the reply being written is still sent.
  virtual void ShutdownForStop() = 0;
};

struct Worker {
  // Declared first so it is destroyed last: destroying `io` destroys pending
  // handlers, and with them connections that unregister themselves here.
  std::unordered_set<ConnectionBase*> connections;  // this worker's thread only
  // One thread runs this context and is the only one to start or complete
  // I/O on its sockets (other threads only post to it and register accepted
  // sockets), so the reactor's per-descriptor I/O lock can go.
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{io.get_executor()};
  std::thread thread;
  std::atomic<bool> finished{false};
  // Replies are built here; connections of this worker take turns.
  std::string write_buffer;
};

}  // namespace

struct MemcacheServer::Impl {
  Impl(MemcacheServer& s, const memcache::ServiceContext& c, ServerOptions o)
      : server(s), context(c), options(std::move(o)) {}

  MemcacheServer& server;
  const memcache::ServiceContext& context;
  const ServerOptions options;
  std::vector<std::unique_ptr<Worker>> workers;
  std::optional<tcp::acceptor> tcp_acceptor;
  std::optional<local::acceptor> unix_acceptor;
  std::optional<asio::steady_timer> retry_timer;
  size_t next_worker = 0;
  bool stopping = false;  // worker 0's thread only
  bool started = false;

  std::atomic<size_t>& server_open_connections() { return server.open_connections_; }

  Worker& NextWorker() {
    Worker& w = *workers[next_worker];
    next_worker = (next_worker + 1) % workers.size();
    return w;
  }

  template <typename Acceptor>
  void Accept(Acceptor& acceptor);
  template <typename Socket>
  void Adopt(Worker& worker, Socket socket);
};

namespace {

template <typename Socket>
class Connection final : public ConnectionBase,
                         public std::enable_shared_from_this<Connection<Socket>> {
 public:
  Connection(MemcacheServer::Impl& impl, Worker& worker, Socket socket)
      : impl_(impl), worker_(worker), socket_(std::move(socket)), idle_timer_(worker.io) {}

  ~Connection() override {
    worker_.connections.erase(this);
    impl_.context.stats.ConnectionClosed(Front::kMemcacheText);
    impl_.server_open_connections().fetch_sub(1, std::memory_order_relaxed);
  }

  void Start() {
    worker_.connections.insert(this);
    impl_.context.stats.ConnectionOpened(Front::kMemcacheText);
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return Close();
    last_active_ = Clock::now();
    if (impl_.options.idle_timeout.count() > 0) ArmIdleTimer(last_active_ + impl_.options.idle_timeout);
    Read();
  }

  void ShutdownForStop() override {
    // A reply being written is finished first (OnWritable closes); a
    // connection waiting for input has nothing in flight and closes now.
    stopping_ = true;
    if (unsent_.empty()) Close();  // cancels the pending read
  }

 private:
  // Reads go into a small per-connection buffer with async_read_some, which
  // Asio tries speculatively before touching epoll; waiting for readiness
  // without a buffer (async_wait) would cost an epoll_ctl per request. The
  // reply is built in the worker's shared buffer and written with a direct
  // non-blocking send; only what the kernel does not take is kept.
  void Read() {
    const std::span<char> room = input_.ReadRoom();
    socket_.async_read_some(asio::buffer(room.data(), room.size()),
                            [self = this->shared_from_this()](boost::system::error_code ec, size_t n) {
                              self->OnRead(ec, n);
                            });
  }

  void OnRead(boost::system::error_code ec, size_t n) {
    if (ec) return Close();
    input_.Commit(n);
    if (!session_) session_ = memcache::NewSession(static_cast<uint8_t>(input_.pending()[0]), impl_.context);

    std::string& out = worker_.write_buffer;
    memcache::ResetOutput(&out);
    const memcache::ProcessResult result = session_->Process(input_.pending(), &out);
    // Idle means no complete command: bytes of a partial one do not count.
    if (result.completed > 0) last_active_ = Clock::now();
    // Keep only what the session left: a partial request, < kMaxPendingBytes.
    input_.Consume(result.consumed);
    close_after_write_ = result.close || stopping_;

    size_t written = 0;
    if (!out.empty()) {
      written = socket_.write_some(asio::buffer(out), ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return Close();
    }
    if (written < out.size()) {
      unsent_.assign(out, written);
      return WaitWritable();
    }
    if (close_after_write_) return Close();
    Read();
  }

  // The kernel buffer was full (a client that pipelines and reads slowly):
  // write the rest before reading more, which also pushes back on the client.
  void WaitWritable() {
    socket_.async_wait(Socket::wait_write,
                       [self = this->shared_from_this()](boost::system::error_code ec) {
                         if (ec) return self->Close();
                         self->OnWritable();
                       });
  }

  void OnWritable() {
    boost::system::error_code ec;
    const size_t n = socket_.write_some(asio::buffer(unsent_), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return Close();
    unsent_.erase(0, n);
    if (!unsent_.empty()) return WaitWritable();
    std::string().swap(unsent_);
    if (close_after_write_ || stopping_) return Close();
    Read();
  }

  void ArmIdleTimer(Clock::time_point deadline) {
    idle_timer_.expires_at(deadline);
    idle_timer_.async_wait([weak = this->weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      // Rearming on every request would cost a timer operation per request;
      // instead the timer checks the last completed command when it fires.
      const auto deadline_now = self->last_active_ + self->impl_.options.idle_timeout;
      if (Clock::now() >= deadline_now) {
        spdlog::debug("closing idle connection");
        self->Close();
      } else {
        self->ArmIdleTimer(deadline_now);
      }
    });
  }

  void Close() {
    boost::system::error_code ignored;
    idle_timer_.cancel();
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  MemcacheServer::Impl& impl_;
  Worker& worker_;
  Socket socket_;
  asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, asio::io_context::executor_type> idle_timer_;
  std::unique_ptr<memcache::Session> session_;
  memcache::InputBuffer input_;
  std::string unsent_;  // reply bytes the kernel did not take yet (usually empty)
  bool close_after_write_ = false;
  bool stopping_ = false;
  Clock::time_point last_active_;  // start, or the last completed command
};

}  // namespace

template <typename Socket>
void MemcacheServer::Impl::Adopt(Worker& worker, Socket socket) {
  if (server.open_connections_.load(std::memory_order_relaxed) >= options.max_connections) {
    server.rejected_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("connection limit {} reached; closing a new connection", options.max_connections);
    boost::system::error_code ignored;
    socket.close(ignored);
    return;
  }
  server.open_connections_.fetch_add(1, std::memory_order_relaxed);
  if constexpr (std::is_same_v<typename Socket::protocol_type, tcp>) {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
  }
  // The socket already belongs to `worker`'s io_context; start it there.
  asio::post(worker.io, [this, &worker, sock = std::move(socket)]() mutable {
    std::make_shared<Connection<Socket>>(*this, worker, std::move(sock))->Start();
  });
}

template <typename Acceptor>
void MemcacheServer::Impl::Accept(Acceptor& acceptor) {
  Worker& target = NextWorker();
  // The socket's executor is the concrete io_context one: Asio's default
  // any_io_executor would add type erasure and reference counting to every
  // operation on the connection.
  using Socket = typename Acceptor::protocol_type::socket::template rebind_executor<
      asio::io_context::executor_type>::other;
  acceptor.async_accept(target.io, [this, &acceptor, &target](boost::system::error_code ec,
                                                              Socket socket) {
    if (stopping || ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("accept failed: {}; retrying", ec.message());
      retry_timer->expires_after(kAcceptRetryDelay);
      retry_timer->async_wait([this, &acceptor](boost::system::error_code tec) {
        if (!tec && !stopping) Accept(acceptor);
      });
      return;
    }
    Adopt(target, std::move(socket));
    Accept(acceptor);
  });
}

MemcacheServer::MemcacheServer(const memcache::ServiceContext& context, ServerOptions options)
    : impl_(std::make_unique<Impl>(*this, context, std::move(options))) {}

MemcacheServer::~MemcacheServer() { Stop(); }

namespace {

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

std::error_code MemcacheServer::Start() {
  Impl& im = *impl_;
  if (im.started) return std::make_error_code(std::errc::operation_in_progress);
  const size_t threads = std::max<size_t>(1, im.options.threads);
  for (size_t i = 0; i < threads; ++i) im.workers.push_back(std::make_unique<Worker>());
  asio::io_context& io0 = im.workers[0]->io;
  im.retry_timer.emplace(io0);
  boost::system::error_code ec;

  if (im.options.listen_tcp) {
    tcp::acceptor& acceptor = im.tcp_acceptor.emplace(io0);
    ec = net::ListenTcp(acceptor, im.options.tcp_address, im.options.tcp_port);
    if (ec) return std::error_code(ec.value(), std::system_category());
    bound_port_ = acceptor.local_endpoint().port();
  }

  if (!im.options.unix_socket_path.empty()) {
    RemoveStaleUnixSocket(io0, im.options.unix_socket_path);
    local::acceptor& acceptor = im.unix_acceptor.emplace(io0);
    const local::endpoint endpoint(im.options.unix_socket_path);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return std::error_code(ec.value(), std::system_category());
  }

  if (im.tcp_acceptor) im.Accept(*im.tcp_acceptor);
  if (im.unix_acceptor) im.Accept(*im.unix_acceptor);
  for (auto& w : im.workers) {
    Worker* worker = w.get();
    worker->thread = net::StartIoThread(worker->io, "memcached", [worker] {
      worker->finished.store(true, std::memory_order_release);
    });
  }
  im.started = true;
  return {};
}

void MemcacheServer::Stop(std::chrono::milliseconds grace) {
  Impl& im = *impl_;
  if (!im.started) return;
  im.started = false;
  asio::post(im.workers[0]->io, [&im] {
    im.stopping = true;
    boost::system::error_code ignored;
    if (im.tcp_acceptor) im.tcp_acceptor->close(ignored);
    if (im.unix_acceptor) {
      im.unix_acceptor->close(ignored);
      ::unlink(im.options.unix_socket_path.c_str());
    }
    im.retry_timer->cancel();
  });
  for (auto& w : im.workers) {
    Worker* worker = w.get();
    asio::post(worker->io, [worker] {
      for (ConnectionBase* c : worker->connections) c->ShutdownForStop();
      worker->guard.reset();
    });
  }
  // Connections finish what they are writing, then the contexts run out of
  // work and the threads return. Past the grace period, stop them regardless.
  const auto deadline = Clock::now() + grace;
  for (auto& w : im.workers) {
    while (!w->finished.load(std::memory_order_acquire) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    w->io.stop();
  }
  for (auto& w : im.workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  im.tcp_acceptor.reset();
  im.unix_acceptor.reset();
  im.retry_timer.reset();
  im.workers.clear();  // destroys what a forced stop left pending
}

}  // namespace katsubushi::server
