#include "http/http_server.h"

#include "net/listen.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include <spdlog/spdlog.h>

namespace katsubushi::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

constexpr std::chrono::milliseconds kAcceptRetryDelay{50};

}  // namespace

class Session;

// One io_context per thread, connections pinned to one: a session's handlers
// never run concurrently, so it needs no strand, and its stream can use the
// concrete io_context executor instead of a type-erased, reference-counted one.
struct Worker {
  asio::io_context io{1};
  // Keeps run() going while the worker has no connection yet; Stop() ends it.
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::thread thread;
};

struct HttpServer::Impl {
  Impl(HttpServer& s, const HttpContext& c, HttpOptions o)
      : server(s), context(c), options(std::move(o)) {
    for (size_t i = 0; i < std::max<size_t>(1, options.threads); ++i) {
      workers.push_back(std::make_unique<Worker>());
    }
  }

  HttpServer& server;
  const HttpContext& context;
  const HttpOptions options;
  // Live sessions, so Stop() can close the idle ones. Touched on accept,
  // on session end and by Stop(): a mutex is fine off the request path.
  // Declared before `workers`, whose destruction may destroy sessions.
  std::mutex sessions_mutex;
  std::unordered_set<Session*> sessions;
  std::atomic<size_t> open{0};
  std::vector<std::unique_ptr<Worker>> workers;
  size_t next_worker = 0;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> retry_timer;
  std::atomic<bool> stopping{false};
  bool started = false;

  void Accept();
};

using Executor = asio::io_context::executor_type;
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;
using Socket = asio::basic_stream_socket<tcp, Executor>;

// Writes a response as HTTP/1.x bytes. Route() already set Content-Length and
// Connection; serializing by hand is several times cheaper than Beast's
// generic serializer for responses this small.
void Serialize(const Response& response, std::string* out) {
  out->clear();
  out->append(response.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out->append(std::to_string(response.result_int()));
  out->push_back(' ');
  const auto reason = response.reason();
  out->append(reason.data(), reason.size());
  out->append("\r\n");
  for (const auto& field : response) {
    out->append(field.name_string().data(), field.name_string().size());
    out->append(": ");
    out->append(field.value().data(), field.value().size());
    out->append("\r\n");
  }
  out->append("\r\n");
  out->append(response.body());
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl& impl, Socket socket)
      : impl_(impl), stream_(std::move(socket)) {}

  ~Session() {
    {
      std::lock_guard lock(impl_.sessions_mutex);
      impl_.sessions.erase(this);
    }
    impl_.context.stats.ConnectionClosed(Front::kHttp);
    impl_.open.fetch_sub(1, std::memory_order_relaxed);
  }

  void Start() {
    {
      std::lock_guard lock(impl_.sessions_mutex);
      impl_.sessions.insert(this);
    }
    impl_.context.stats.ConnectionOpened(Front::kHttp);
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  // From any thread: close at once unless a response is being written.
  void Shutdown() {
    std::shared_ptr<Session> self_or_null = weak_from_this().lock();
    if (!self_or_null) return;  // already being destroyed
    asio::post(stream_.get_executor(), [self = std::move(self_or_null)] {
      self->stopping_ = true;
      if (!self->writing_) self->Close();
    });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(HttpOptions::kMaxHeaderBytes);
    parser_->body_limit(HttpOptions::kMaxBodyBytes);
    stream_.expires_after(impl_.options.request_timeout);
    beast::http::async_read(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->OnRead(ec);
                            });
  }

  void OnRead(beast::error_code ec) {
    if (ec == beast::http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || stopping_) {
      return Close();
    }
    if (ec) {
      // A malformed or oversized request: answer in HTTP's terms, then close,
      // since the rest of the stream cannot be framed.
      Request bad;
      bad.version(11);
      bad.keep_alive(false);
      beast::http::status code = beast::http::status::bad_request;
      std::string message = "bad request: " + ec.message() + "\n";
      if (ec == beast::http::error::header_limit) code = beast::http::status::request_header_fields_too_large;
      if (ec == beast::http::error::body_limit) code = beast::http::status::payload_too_large;
      response_.emplace(code, 11);
      response_->set(beast::http::field::content_type, "text/plain");
      response_->body() = std::move(message);
      response_->keep_alive(false);
      response_->prepare_payload();
      return Write();
    }
    response_.emplace(Route(parser_->get(), impl_.context));
    Write();
  }

  void Write() {
    writing_ = true;
    keep_alive_ = response_->keep_alive();
    Serialize(*response_, &out_);
    response_.reset();
    // out_ lives in the session until the write completes.
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    writing_ = false;
    if (ec || !keep_alive_ || stopping_) return Close();
    Read();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(Socket::shutdown_send, ignored);
    stream_.close();
  }

  HttpServer::Impl& impl_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<beast::http::request_parser<beast::http::string_body>> parser_;
  std::optional<Response> response_;
  std::string out_;
  bool keep_alive_ = false;
  bool writing_ = false;
  bool stopping_ = false;
};

void HttpServer::Impl::Accept() {
  Worker& target = *workers[next_worker];
  next_worker = (next_worker + 1) % workers.size();
  acceptor->async_accept(target.io, [this](beast::error_code ec, Socket socket) {
    if (stopping.load(std::memory_order_relaxed) || ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("http accept failed: {}; retrying", ec.message());
      retry_timer->expires_after(kAcceptRetryDelay);
      retry_timer->async_wait([this](beast::error_code tec) {
        if (!tec && !stopping.load(std::memory_order_relaxed)) Accept();
      });
      return;
    }
    if (open.load(std::memory_order_relaxed) >= options.max_connections) {
      server.rejected_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("http connection limit {} reached; closing a new connection", options.max_connections);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      open.fetch_add(1, std::memory_order_relaxed);
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(*this, std::move(socket))->Start();
    }
    Accept();
  });
}

HttpServer::HttpServer(const HttpContext& context, HttpOptions options)
    : impl_(std::make_unique<Impl>(*this, context, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

std::error_code HttpServer::Start() {
  Impl& im = *impl_;
  if (im.started) return std::make_error_code(std::errc::operation_in_progress);
  asio::io_context& io0 = im.workers[0]->io;
  tcp::acceptor& acceptor = im.acceptor.emplace(io0);
  if (const beast::error_code ec = net::ListenTcp(acceptor, im.options.address, im.options.port)) {
    return std::error_code(ec.value(), std::system_category());
  }
  bound_port_ = acceptor.local_endpoint().port();
  im.retry_timer.emplace(io0);
  im.Accept();
  for (auto& w : im.workers) w->thread = net::StartIoThread(w->io, "http");
  im.started = true;
  return {};
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  Impl& im = *impl_;
  if (!im.started) return;
  im.started = false;
  im.stopping.store(true, std::memory_order_relaxed);
  asio::post(im.workers[0]->io, [&im] {
    beast::error_code ignored;
    im.acceptor->close(ignored);
    im.retry_timer->cancel();
  });
  {
    std::lock_guard lock(im.sessions_mutex);
    for (Session* s : im.sessions) s->Shutdown();
  }
  // The threads return when the last session is gone; force them after grace.
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (im.open.load(std::memory_order_relaxed) > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& w : im.workers) w->io.stop();
  for (auto& w : im.workers) w->thread.join();
  im.acceptor.reset();
  im.retry_timer.reset();
}

}  // namespace katsubushi::http
