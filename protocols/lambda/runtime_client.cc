#include "lambda/runtime_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "lambda/event.h"
#include "lambda/json.h"

namespace katsubushi::lambda {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr std::string_view kBase = "/2018-06-01/runtime";
// An event body may be up to kMaxEventBytes; leave room for nothing more.
constexpr size_t kMaxReplyBody = kMaxEventBytes + 1024;

std::string ErrorJson(std::string_view type, std::string_view message) {
  return "{\"errorMessage\":" + JsonQuote(message) + ",\"errorType\":" + JsonQuote(type) + "}";
}

}  // namespace

struct RuntimeClient::Reply {
  unsigned status = 0;
  std::string request_id;
  std::string body;
};

RuntimeClient::RuntimeClient(std::string api) {
  const size_t colon = api.rfind(':');
  host_ = colon == std::string::npos ? api : api.substr(0, colon);
  port_ = colon == std::string::npos ? "80" : api.substr(colon + 1);
}

RuntimeClient::~RuntimeClient() = default;

bool RuntimeClient::Call(bool post, const std::string& target, std::string_view body,
                         std::string_view error_type, Reply* reply, std::string* error) {
  asio::io_context io(1);
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(host_, port_, ec);
  tcp::socket socket(io);
  if (!ec) asio::connect(socket, endpoints, ec);
  if (ec) {
    *error = "cannot reach the Lambda Runtime API at " + host_ + ":" + port_ + ": " + ec.message();
    return false;
  }
  http::request<http::string_body> request(post ? http::verb::post : http::verb::get, target, 11);
  request.set(http::field::host, host_);
  request.set(http::field::user_agent, "katsubushi-cpp");
  if (!error_type.empty()) {
    request.set(boost::beast::string_view("Lambda-Runtime-Function-Error-Type"),
                boost::beast::string_view(error_type.data(), error_type.size()));
  }
  if (post) {
    request.set(http::field::content_type, "application/json");
    request.body() = std::string(body);
    request.prepare_payload();
  }
  http::write(socket, request, ec);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBody);
  if (!ec) http::read(socket, buffer, parser, ec);
  if (ec) {
    *error = "Lambda Runtime API " + target + ": " + ec.message();
    return false;
  }
  const auto& response = parser.get();
  reply->status = response.result_int();
  reply->request_id = std::string(response["Lambda-Runtime-Aws-Request-Id"]);
  reply->body = response.body();
  socket.shutdown(tcp::socket::shutdown_both, ec);
  if (reply->status / 100 != 2) {
    *error = "Lambda Runtime API " + target + " answered " + std::to_string(reply->status) + ": " +
             reply->body.substr(0, 200);
    return false;
  }
  return true;
}

bool RuntimeClient::Next(Invocation* out, std::string* error) {
  Reply reply;
  if (!Call(false, std::string(kBase) + "/invocation/next", {}, {}, &reply, error)) return false;
  if (reply.request_id.empty()) {
    *error = "Lambda Runtime API gave an event without Lambda-Runtime-Aws-Request-Id";
    return false;
  }
  out->request_id = std::move(reply.request_id);
  out->body = std::move(reply.body);
  return true;
}

bool RuntimeClient::Respond(std::string_view request_id, std::string_view body, std::string* error) {
  Reply reply;
  return Call(true, std::string(kBase) + "/invocation/" + std::string(request_id) + "/response",
              body, {}, &reply, error);
}

bool RuntimeClient::ReportError(std::string_view request_id, std::string_view type,
                                std::string_view message, std::string* error) {
  Reply reply;
  return Call(true, std::string(kBase) + "/invocation/" + std::string(request_id) + "/error",
              ErrorJson(type, message), type, &reply, error);
}

bool RuntimeClient::ReportInitError(std::string_view type, std::string_view message,
                                    std::string* error) {
  Reply reply;
  return Call(true, std::string(kBase) + "/init/error", ErrorJson(type, message), type, &reply,
              error);
}

}  // namespace katsubushi::lambda
