#include "http/http_server.h"

#include "net/close_when_sent.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <type_traits>

namespace katsubushi::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
// The TCP stream with Beast's timeouts, and HTTPS over it.
using TcpStream = beast::basic_stream<tcp, net::Executor, beast::unlimited_rate_policy>;
using TlsStream = net::TlsStream<TcpStream>;

// The first read of a request: a GET with its headers fits many times over.
constexpr size_t kFirstReadBytes = 4096;

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

// One connection, plaintext (Stream = TcpStream) or HTTPS (TlsStream); the
// two differ only in the handshake before the first request.
template <typename Stream>
class Session final : public net::Connection, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(net::Worker& worker, const HttpContext& context, const HttpOptions& options,
          const net::TlsAcceptor* tls, Stream stream)
      : net::Connection(worker), context_(context), options_(options), tls_(tls), stream_(std::move(stream)) {}

  ~Session() override { context_.stats.ConnectionClosed(FrontLabel::kHttp); }

  void Start() {
    context_.stats.ConnectionOpened(FrontLabel::kHttp);
    if constexpr (kTls) return Handshake();
    Read();
  }

  // Close at once unless a response is being written (then after it). A
  // connection waiting for a request is asked to end its read rather than
  // closed here: the read may already have taken a whole request off the
  // socket (its completion queued behind this sweep), and a request the
  // server has received is answered. OnFirstBytes and OnRead tell them apart.
  void StopWhenIdle() override {
    stopping_ = true;
    if (!writing_) {
      beast::error_code ignored;
      tcp_stream().socket().cancel(ignored);
    }
  }

 private:
  TcpStream& tcp_stream() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  // HTTPS: the handshake, bounded by the acceptor's timeout (Beast's
  // timeout closes the socket when it passes), then requests as over TCP.
  void Handshake() {
    tcp_stream().expires_after(tls_->handshake_timeout());
    stream_.async_handshake([self = this->shared_from_this()](beast::error_code ec) {
      // A handshake the stop sweep ended is not the client's failure.
      if (self->stopping_) return self->Close();
      if (!self->tls_->Finished(ec, self->stream_.pipe(), ec == beast::error::timeout)) return self->Close();
      self->Read();
    });
  }

  // The wait for a request's first byte is bounded by the idle timeout (a
  // keep-alive connection between requests); the rest of the request by
  // the request timeout from that byte on, so a slow client is cut off.
  void Read() {
    parser_.emplace();
    parser_->header_limit(HttpOptions::kMaxHeaderBytes);
    parser_->body_limit(HttpOptions::kMaxBodyBytes);
    if (buffer_.size() > 0) return ReadRest();  // pipelined: it has begun
    if (options_.idle_timeout.count() > 0) {
      tcp_stream().expires_after(options_.idle_timeout);
    } else {
      tcp_stream().expires_never();
    }
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->OnFirstBytes(ec, n);
                            });
  }

  void OnFirstBytes(beast::error_code ec, size_t n) {
    if (ec == asio::error::operation_aborted && stopping_) return CloseGracefully();
    if (ec) return Close();  // the client left, or the idle timeout passed
    buffer_.commit(n);
    // Most requests arrive in one read: parse them here, which needs no
    // second read and no second deadline.
    while (!parser_->is_done()) {
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == beast::http::error::need_more) return ReadRest();
      if (ec) return OnRead(ec);
      if (used == 0) return ReadRest();
    }
    OnRead({});
  }

  void ReadRest() {
    tcp_stream().expires_after(options_.request_timeout);
    beast::http::async_read(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->OnRead(ec);
                            });
  }

  void OnRead(beast::error_code ec) {
    if (ec == asio::error::operation_aborted && stopping_) return CloseGracefully();
    // Only the parser's errors are the request's fault; anything else (the
    // client left, a timeout, a TLS record that does not decrypt) ends the
    // connection without a response.
    if (ec == beast::http::error::end_of_stream ||
        (ec && ec.category() != beast::http::make_error_code(beast::http::error::end_of_stream).category())) {
      return Close();
    }
    read_at_ = std::chrono::steady_clock::now();
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
    response_.emplace(Route(parser_->get(), context_));
    // Received during the stop: answered, and the client told it is the last.
    if (stopping_) response_->keep_alive(false);
    Write();
  }

  void Write() {
    writing_ = true;
    keep_alive_ = response_->keep_alive();
    Serialize(*response_, &out_);
    response_.reset();
    // out_ lives in the session until the write completes.
    asio::async_write(stream_, asio::buffer(out_),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    writing_ = false;
    if (!ec) context_.stats.ObserveDuration(FrontLabel::kHttp, std::chrono::steady_clock::now() - read_at_);
    if (ec) return Close();
    if (stopping_) return CloseGracefully();
    if (!keep_alive_) return Close();
    Read();
  }

  // The server is stopping, every request received is answered and every
  // response handed to the kernel (no read or write is pending): close
  // without letting unread input turn the close into a reset that drops
  // responses still in the kernel's send queue.
  //
  // HTTPS sends no close_notify here: every response carries its length.
  void CloseGracefully() { net::CloseWhenSent(tcp_stream().release_socket()); }

  void Close() {
    beast::error_code ignored;
    tcp_stream().socket().shutdown(net::TcpSocket::shutdown_send, ignored);
    tcp_stream().close();
  }

  const HttpContext& context_;
  const HttpOptions& options_;
  const net::TlsAcceptor* const tls_;  // set for kTls only
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<beast::http::request_parser<beast::http::string_body>> parser_;
  std::optional<Response> response_;
  std::string out_;
  std::chrono::steady_clock::time_point read_at_;  // the request being answered was read
  bool keep_alive_ = false;
  bool writing_ = false;
  bool stopping_ = false;
};

}  // namespace

HttpServer::HttpServer(const HttpContext& context, HttpOptions options)
    : net::IoFront(net::IoServerOptions{"http", options.threads, options.max_connections},
                   [this](net::Worker& worker, net::TcpSocket socket) {
                     if (!tls_) {
                       std::make_shared<Session<TcpStream>>(worker, context_, options_, nullptr,
                                                            TcpStream(std::move(socket)))
                           ->Start();
                       return;
                     }
                     std::optional<TlsStream> stream = tls_->NewStream(TcpStream(std::move(socket)));
                     if (!stream) return;  // closes the socket
                     std::make_shared<Session<TlsStream>>(worker, context_, options_, &*tls_, std::move(*stream))
                         ->Start();
                   }),
      context_(context),
      options_(std::move(options)) {
  if (options_.tls) tls_.emplace(options_.tls, FrontLabel::kHttp, context.stats, options_.idle_timeout);
}

std::error_code HttpServer::Start() {
  if (const auto ec = io_.ListenTcp(options_.address, options_.port)) {
    return std::error_code(ec.value(), std::system_category());
  }
  io_.Start();
  return {};
}

}  // namespace katsubushi::http
