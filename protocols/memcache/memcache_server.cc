#include "memcache/memcache_server.h"

#include <boost/asio.hpp>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "memcache/binary_header.h"
#include "memcache/connection_buffers.h"
#include "net/close_when_sent.h"

namespace katsubushi::memcache {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Replies are built here; the connections of one worker thread take turns.
thread_local std::string write_buffer;

template <typename Socket>
class Connection final : public net::Connection,
                         public std::enable_shared_from_this<Connection<Socket>> {
 public:
  Connection(net::Worker& worker, const ServiceContext& context, const ServerOptions& options,
             Socket socket)
      : net::Connection(worker),
        context_(context),
        options_(options),
        socket_(std::move(socket)),
        idle_timer_(worker.io()) {}

  ~Connection() override { context_.stats.ConnectionClosed(front_); }

  void Start() {
    // Counted as text until the first byte says otherwise.
    context_.stats.ConnectionOpened(front_);
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return Close();
    last_active_ = Clock::now();
    if (options_.idle_timeout.count() > 0) ArmIdleTimer(last_active_ + options_.idle_timeout);
    Read();
  }

  void StopWhenIdle() override {
    // A reply being written is finished first (OnWritable closes). A
    // connection waiting for input is asked to end its read rather than
    // closed here: the read may already have taken a request off the socket
    // (its completion queued behind this sweep), and a request the server
    // has received is answered. OnRead tells the two apart.
    stopping_ = true;
    if (unsent_.empty()) {
      boost::system::error_code ignored;
      socket_.cancel(ignored);
    }
  }

 private:
  // Reads go into a small per-connection buffer with async_read_some, which
  // Asio tries speculatively before touching epoll; waiting for readiness
  // without a buffer (async_wait) would cost an epoll_ctl per request. The
  // reply is built in the thread's shared buffer and written with a direct
  // non-blocking send; only what the kernel does not take is kept.
  void Read() {
    const std::span<char> room = input_.ReadRoom();
    socket_.async_read_some(asio::buffer(room.data(), room.size()),
                            [self = this->shared_from_this()](boost::system::error_code ec, size_t n) {
                              self->OnRead(ec, n);
                            });
  }

  void OnRead(boost::system::error_code ec, size_t n) {
    if (ec == asio::error::operation_aborted && stopping_) return CloseGracefully();
    if (ec) return Close();
    const Clock::time_point read_at = Clock::now();
    input_.Commit(n);
    if (!session_) {
      const auto first = static_cast<uint8_t>(input_.pending()[0]);
      session_ = NewSession(first, context_);
      if (first == kBinaryRequestMagic) {
        context_.stats.ConnectionIs(front_, FrontLabel::kMemcacheBinary);
        front_ = FrontLabel::kMemcacheBinary;
      }
    }

    std::string& out = write_buffer;
    ResetOutput(&out);
    const ProcessResult result = session_->Process(input_.pending(), &out);
    // Keep only what the session left: a partial request, < kMaxPendingBytes.
    input_.Consume(result.consumed);
    close_after_write_ = result.close || stopping_;

    size_t written = 0;
    if (!out.empty()) {
      written = socket_.write_some(asio::buffer(out), ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return Close();
    }
    if (result.completed > 0) {
      // Idle means no complete command: bytes of a partial one do not count.
      last_active_ = Clock::now();
      // Every request of the batch waited for the batch's one write.
      context_.stats.ObserveDuration(front_, last_active_ - read_at, result.completed);
    }
    if (written < out.size()) {
      unsent_.assign(out, written);
      return WaitWritable();
    }
    if (stopping_) return CloseGracefully();
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
    if (stopping_) return CloseGracefully();
    if (close_after_write_) return Close();
    Read();
  }

  void ArmIdleTimer(Clock::time_point deadline) {
    idle_timer_.expires_at(deadline);
    idle_timer_.async_wait([weak = this->weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      // Rearming on every request would cost a timer operation per request;
      // instead the timer checks the last completed command when it fires.
      const auto deadline_now = self->last_active_ + self->options_.idle_timeout;
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

  // The server is stopping, every request received is answered and every
  // reply handed to the kernel (no read or write is pending): close without
  // letting unread input turn the close into a reset that drops replies
  // still in the kernel's send queue.
  void CloseGracefully() {
    idle_timer_.cancel();
    net::CloseWhenSent(std::move(socket_));
  }

  const ServiceContext& context_;
  const ServerOptions& options_;
  Socket socket_;
  asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, net::Executor> idle_timer_;
  std::unique_ptr<Session> session_;
  InputBuffer input_;
  std::string unsent_;  // reply bytes the kernel did not take yet (usually empty)
  bool close_after_write_ = false;
  bool stopping_ = false;
  FrontLabel front_ = FrontLabel::kMemcacheText;  // the label it is counted under
  Clock::time_point last_active_;  // start, or the last completed command
};

template <typename Socket>
auto StartConnection(const ServiceContext& context, const ServerOptions& options) {
  return [&context, &options](net::Worker& worker, Socket socket) {
    std::make_shared<Connection<Socket>>(worker, context, options, std::move(socket))->Start();
  };
}

}  // namespace

// The handlers keep a reference to options_, which is constructed after the
// base but before any connection can be accepted.
MemcacheServer::MemcacheServer(const ServiceContext& context, ServerOptions options)
    : net::IoFront(net::IoServerOptions{"memcached", options.threads, options.max_connections},
                   StartConnection<net::TcpSocket>(context, options_),
                   StartConnection<net::UnixSocket>(context, options_)),
      options_(std::move(options)) {}

std::error_code MemcacheServer::Start() {
  if (options_.listen_tcp) {
    if (const auto ec = io_.ListenTcp(options_.tcp_address, options_.tcp_port)) {
      return std::error_code(ec.value(), std::system_category());
    }
  }
  if (!options_.unix_socket_path.empty()) {
    if (const auto ec = io_.ListenUnix(options_.unix_socket_path)) {
      return std::error_code(ec.value(), std::system_category());
    }
  }
  io_.Start();
  return {};
}

}  // namespace katsubushi::memcache
