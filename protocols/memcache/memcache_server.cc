#include "memcache/memcache_server.h"

#include <boost/asio.hpp>
#include <cstring>
#include <type_traits>
#include <vector>

#include <spdlog/spdlog.h>

#include "katsubushi/tls_handshake_failure.h"
#include "memcache/binary_header.h"
#include "memcache/connection_buffers.h"
#include "net/close_when_sent.h"

namespace katsubushi::memcache {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Replies are built here; the connections of one worker thread take turns.
thread_local std::string write_buffer;

using TlsStream = net::TlsStream<net::TcpSocket>;

// The socket under a connection's stream.
template <typename Stream>
struct SocketOf {
  using type = Stream;
};
template <typename Socket>
struct SocketOf<net::TlsStream<Socket>> {
  using type = Socket;
};

// A connection on a plaintext socket (TCP, unix) or a TLS stream over TCP
// (net::TlsStream). The two differ only in the handshake and in how a reply
// is written: a plaintext reply goes straight to the kernel with a
// non-blocking send, a TLS reply becomes records that an asynchronous write
// sends (OpenSSL must see every record through, whatever the kernel takes).
template <typename Stream>
class Connection final : public net::Connection,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using Socket = typename SocketOf<Stream>::type;

  Connection(net::Worker& worker, const ServiceContext& context, const ServerOptions& options,
             const net::TlsAcceptor* tls, Stream stream)
      : net::Connection(worker),
        context_(context),
        options_(options),
        tls_(tls),
        stream_(std::move(stream)),
        idle_timer_(worker.io()) {}

  ~Connection() override { context_.stats.ConnectionClosed(front_); }

  void Start() {
    // Counted as text until the first byte says otherwise.
    context_.stats.ConnectionOpened(front_);
    boost::system::error_code ec;
    socket().non_blocking(true, ec);
    if (ec) return Close();
    if constexpr (kTls) return Handshake();
    Serve();
  }

  void StopWhenIdle() override {
    // A reply being written is finished first (OnWritable closes). A
    // connection waiting for input is asked to end its read rather than
    // closed here: the read may already have taken a request off the socket
    // (its completion queued behind this sweep), and a request the server
    // has received is answered. OnRead tells the two apart. A TLS
    // handshake in progress has received no request: it ends too.
    stopping_ = true;
    if (unsent_.empty()) {
      boost::system::error_code ignored;
      socket().cancel(ignored);
    }
  }

 private:
  Socket& socket() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  // TLS first: the handshake, bounded by the acceptor's timeout (the idle
  // timer watches it), then the same service as a plaintext connection.
  void Handshake() {
    idle_timer_.expires_after(tls_->handshake_timeout());
    idle_timer_.async_wait([weak = this->weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->handshaken_) return;
      self->handshake_timed_out_ = true;
      boost::system::error_code ignored;
      self->socket().cancel(ignored);
    });
    stream_.async_handshake([self = this->shared_from_this()](boost::system::error_code ec) {
      self->handshaken_ = true;
      // A handshake the stop sweep ended is not the client's failure.
      if (self->stopping_) return self->Close();
      if (!self->tls_->Finished(ec, self->stream_.pipe(), self->handshake_timed_out_)) return self->Close();
      self->Serve();
    });
  }

  void Serve() {
    last_active_ = Clock::now();
    if (options_.idle_timeout.count() > 0) {
      ArmIdleTimer(last_active_ + options_.idle_timeout);
    } else {
      idle_timer_.cancel();  // the handshake's
    }
    Read();
  }

  // Reads go into a small per-connection buffer with async_read_some, which
  // Asio tries speculatively before touching epoll; waiting for readiness
  // without a buffer (async_wait) would cost an epoll_ctl per request. The
  // reply is built in the thread's shared buffer and written with a direct
  // non-blocking send; only what the kernel does not take is kept.
  void Read() {
    const std::span<char> room = input_.ReadRoom();
    stream_.async_read_some(asio::buffer(room.data(), room.size()),
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
      // A TLS client on a plaintext port: its ClientHello has no line end
      // for the text protocol to wait for, so it would hang until the idle
      // timeout. No memcached command starts with a handshake record's type.
      if (!kTls && first == kTlsHandshakeRecordType) {
        spdlog::debug("closing a TLS client on a plaintext memcached port");
        return Close();
      }
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

    if constexpr (kTls) {
      if (result.completed > 0) CountCompleted(read_at, result.completed);
      if (!out.empty()) return WriteTls(out);
      if (stopping_) return CloseGracefully();
      if (close_after_write_) return Close();
      Read();
    } else {
      WritePlain(out, read_at, result.completed);
    }
  }

  void WritePlain(const std::string& out, Clock::time_point read_at, size_t completed) {
    boost::system::error_code ec;
    size_t written = 0;
    if (!out.empty()) {
      written = stream_.write_some(asio::buffer(out), ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return Close();
    }
    if (completed > 0) CountCompleted(read_at, completed);
    if (written < out.size()) {
      unsent_.assign(out, written);
      return WaitWritable();
    }
    if (stopping_) return CloseGracefully();
    if (close_after_write_) return Close();
    Read();
  }

  void CountCompleted(Clock::time_point read_at, size_t completed) {
    // Idle means no complete command: bytes of a partial one do not count.
    last_active_ = Clock::now();
    // Every request of the batch waited for the batch's one write.
    context_.stats.ObserveDuration(front_, last_active_ - read_at, completed);
  }

  // TLS: the reply is kept in unsent_ (the thread's buffer is shared) until
  // OpenSSL's records for it are all sent; unsent_ being non-empty is the
  // "writing" state the stop sweep looks at, as for a plaintext reply.
  void WriteTls(const std::string& out) {
    unsent_.assign(out);
    asio::async_write(stream_, asio::buffer(unsent_),
                      [self = this->shared_from_this()](boost::system::error_code ec, size_t) {
                        self->unsent_.clear();
                        if (ec) return self->Close();
                        if (self->stopping_) return self->CloseGracefully();
                        if (self->close_after_write_) return self->Close();
                        self->Read();
                      });
  }

  // The kernel buffer was full (a client that pipelines and reads slowly):
  // write the rest before reading more, which also pushes back on the client.
  void WaitWritable() {
    stream_.async_wait(Socket::wait_write,
                       [self = this->shared_from_this()](boost::system::error_code ec) {
                         if (ec) return self->Close();
                         self->OnWritable();
                       });
  }

  void OnWritable() {
    boost::system::error_code ec;
    const size_t n = stream_.write_some(asio::buffer(unsent_), ec);
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
    socket().shutdown(Socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  // The server is stopping, every request received is answered and every
  // reply handed to the kernel (no read or write is pending): close without
  // letting unread input turn the close into a reset that drops replies
  // still in the kernel's send queue.
  //
  // TLS sends no close_notify here: the last reply's records are complete,
  // and memcached's framing tells a client where a reply ends.
  void CloseGracefully() {
    idle_timer_.cancel();
    net::CloseWhenSent(std::move(socket()));
  }

  const ServiceContext& context_;
  const ServerOptions& options_;
  const net::TlsAcceptor* const tls_;  // set for kTls only
  Stream stream_;
  asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, net::Executor> idle_timer_;
  std::unique_ptr<Session> session_;
  InputBuffer input_;
  std::string unsent_;  // reply bytes the kernel did not take yet (usually empty)
  bool close_after_write_ = false;
  bool stopping_ = false;
  bool handshaken_ = false;          // TLS: the handshake ended, well or not
  bool handshake_timed_out_ = false;  // TLS: ended by the handshake timeout
  FrontLabel front_ = FrontLabel::kMemcacheText;  // the label it is counted under
  Clock::time_point last_active_;  // start, or the last completed command
};

template <typename Socket>
auto StartConnection(const ServiceContext& context, const ServerOptions& options) {
  return [&context, &options](net::Worker& worker, Socket socket) {
    std::make_shared<Connection<Socket>>(worker, context, options, nullptr, std::move(socket))->Start();
  };
}

// TCP connections speak TLS when the front has an acceptor (the unix socket
// never does: it does not leave the host).
auto StartTcpConnection(const ServiceContext& context, const ServerOptions& options,
                        const std::optional<net::TlsAcceptor>& tls) {
  return [&context, &options, &tls](net::Worker& worker, net::TcpSocket socket) {
    if (!tls) return StartConnection<net::TcpSocket>(context, options)(worker, std::move(socket));
    std::optional<TlsStream> stream = tls->NewStream(std::move(socket));
    if (!stream) return;  // closes the socket
    std::make_shared<Connection<TlsStream>>(worker, context, options, &*tls, std::move(*stream))->Start();
  };
}

}  // namespace

// The handlers keep references to options_ and tls_, which are constructed
// after the base but before any connection can be accepted.
MemcacheServer::MemcacheServer(const ServiceContext& context, ServerOptions options)
    : net::IoFront(net::IoServerOptions{"memcached", options.threads, options.max_connections},
                   StartTcpConnection(context, options_, tls_),
                   StartConnection<net::UnixSocket>(context, options_)),
      options_(std::move(options)) {
  if (options_.tls) tls_.emplace(options_.tls, FrontLabel::kMemcacheText, context.stats, options_.idle_timeout);
}

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
