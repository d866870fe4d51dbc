// Lambda HTTP events in and out: the shapes AWS delivers to a function behind
// API Gateway (REST, payload 1.0), HTTP API / Function URL (payload 2.0) and
// an Application Load Balancer (single- or multi-value headers), decoded to
// one neutral request, and the reply encoded back in the shape that came in.
//
// Query strings: API Gateway 1.0 delivers decoded values (re-encoded here),
// 2.0 the raw query, and ALB values still URL-encoded (passed through as they
// are). Bodies with isBase64Encoded are decoded.
//
// Pure functions; thread-safe. No exceptions: errors are nullopt + a reason.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace katsubushi::lambda {

// Lambda's own limit for a synchronous invocation payload.
inline constexpr size_t kMaxEventBytes = 6 * 1024 * 1024;

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpEvent {
  enum class Shape { kApiGatewayV1, kHttpApiV2, kAlb };
  Shape shape = Shape::kApiGatewayV1;
  // The event had multiValueHeaders (ALB with multi-value headers on, or
  // API Gateway 1.0): the reply uses them too.
  bool multi_value = false;
  std::string method;
  std::string path;
  std::string query;  // URL-encoded, without the '?'
  HeaderList headers;
  std::string body;

  // path?query
  std::string Target() const { return query.empty() ? path : path + "?" + query; }
};

struct HttpReply {
  int status = 200;
  std::string reason;  // "OK"; ALB wants "200 OK" as statusDescription
  HeaderList headers;
  std::string body;
};

std::optional<HttpEvent> DecodeHttpEvent(std::string_view json, std::string* error);

std::string EncodeHttpReply(const HttpEvent& event, const HttpReply& reply);

// Helpers, exposed for tests.
std::string UrlEncode(std::string_view s);
std::optional<std::string> Base64Decode(std::string_view s);

}  // namespace katsubushi::lambda
