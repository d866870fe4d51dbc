#include "lambda/api_call.h"

#include <sys/socket.h>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace katsubushi::lambda {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// Publishes the call's socket to its interrupter for as long as it lives.
class Published {
 public:
  Published(std::atomic<int>* slot, int fd) : slot_(slot) {
    if (slot_ != nullptr) slot_->store(fd);
  }
  ~Published() {
    if (slot_ != nullptr) slot_->store(-1);
  }
  Published(const Published&) = delete;
  Published& operator=(const Published&) = delete;

 private:
  std::atomic<int>* slot_;
};

}  // namespace

void ApiInterrupter::Interrupt() noexcept {
  stop_.store(true);
  const int fd = fd_.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

ApiEndpoint ApiEndpoint::Parse(std::string_view api) {
  const size_t colon = api.rfind(':');
  if (colon == std::string_view::npos) return {std::string(api), "80"};
  return {std::string(api.substr(0, colon)), std::string(api.substr(colon + 1))};
}

std::string ApiReply::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (boost::iequals(key, name)) return value;
  }
  return {};
}

bool CallApi(const ApiEndpoint& endpoint, const ApiRequest& request, ApiReply* reply,
             std::string* error) {
  asio::io_context io(1);
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(endpoint.host, endpoint.port, ec);
  tcp::socket socket(io);
  ApiInterrupter* const interrupter = request.interrupter;
  if (interrupter != nullptr && interrupter->interrupted()) {
    reply->interrupted = true;
    *error = "interrupted";
    return false;
  }
  if (!ec) asio::connect(socket, endpoints, ec);
  const Published published(interrupter != nullptr ? &interrupter->fd_ : nullptr,
                            socket.is_open() ? socket.native_handle() : -1);
  if (interrupter != nullptr && interrupter->interrupted()) {
    reply->interrupted = true;
    *error = "interrupted";
    return false;
  }
  if (ec) {
    *error = "cannot reach the Lambda API at " + endpoint.host + ":" + endpoint.port + ": " +
             ec.message();
    return false;
  }
  http::request<http::string_body> message(request.post ? http::verb::post : http::verb::get,
                                           request.target, 11);
  message.set(http::field::host, endpoint.host);
  message.set(http::field::user_agent, "katsubushi-cpp");
  for (const auto& [name, value] : request.headers) message.set(name, value);
  if (request.post) {
    message.set(http::field::content_type, "application/json");
    message.body() = request.body;
    message.prepare_payload();
  }
  http::write(socket, message, ec);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxApiReplyBytes);
  if (!ec) http::read(socket, buffer, parser, ec);
  if (ec) {
    reply->interrupted = interrupter != nullptr && interrupter->interrupted();
    *error = "Lambda API " + request.target + ": " + ec.message();
    return false;
  }
  const auto& response = parser.get();
  reply->status = response.result_int();
  for (const auto& field : response) {
    reply->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  reply->body = response.body();
  socket.shutdown(tcp::socket::shutdown_both, ec);
  if (reply->status / 100 != 2) {
    *error = "Lambda API " + request.target + " answered " + std::to_string(reply->status) + ": " +
             reply->body.substr(0, 200);
    return false;
  }
  return true;
}

}  // namespace katsubushi::lambda
