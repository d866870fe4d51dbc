#include "lambda/event.h"

#include "lambda/json.h"

namespace katsubushi::lambda {
namespace {

using Shape = HttpEvent::Shape;

// "k=v&k2=v2" from an object of strings (or of arrays of strings), each
// part passed through `encode` (identity for ALB, whose values are encoded).
std::string JoinQuery(const JsonValue& params, bool encode) {
  std::string out;
  auto add = [&](std::string_view key, std::string_view value) {
    if (!out.empty()) out.push_back('&');
    out += encode ? UrlEncode(key) : std::string(key);
    out.push_back('=');
    out += encode ? UrlEncode(value) : std::string(value);
  };
  for (const auto& [key, value] : params.members) {
    if (value.is_string()) {
      add(key, value.text);
    } else if (value.is_array()) {
      for (const JsonValue& item : value.items) {
        if (item.is_string()) add(key, item.text);
      }
    }
  }
  return out;
}

void CollectHeaders(const JsonValue* single, const JsonValue* multi, HeaderList* out) {
  if (multi != nullptr && multi->is_object()) {
    for (const auto& [name, values] : multi->members) {
      for (const JsonValue& v : values.items) {
        if (v.is_string()) out->emplace_back(name, v.text);
      }
    }
    return;
  }
  if (single != nullptr && single->is_object()) {
    for (const auto& [name, value] : single->members) {
      if (value.is_string()) out->emplace_back(name, value.text);
    }
  }
}

}  // namespace

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[(static_cast<unsigned char>(c) >> 4) & 0xF]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 0xF]);
    }
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  if (s.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(s.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : s) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

std::optional<HttpEvent> DecodeHttpEvent(std::string_view json, std::string* error) {
  if (json.size() > kMaxEventBytes) {
    *error = "event larger than " + std::to_string(kMaxEventBytes) + " bytes";
    return std::nullopt;
  }
  std::optional<JsonValue> doc = ParseJson(json, error);
  if (!doc) return std::nullopt;
  if (!doc->is_object()) {
    *error = "event is not a JSON object";
    return std::nullopt;
  }
  HttpEvent event;
  const JsonValue* context = doc->Find("requestContext");
  if (doc->StringOr("version", "") == "2.0") {
    event.shape = Shape::kHttpApiV2;
    const JsonValue* http = context != nullptr ? context->Find("http") : nullptr;
    event.method = http != nullptr ? std::string(http->StringOr("method", "")) : "";
    event.path = doc->StringOr("rawPath", "");
    event.query = doc->StringOr("rawQueryString", "");
    CollectHeaders(doc->Find("headers"), nullptr, &event.headers);
    if (const JsonValue* cookies = doc->Find("cookies"); cookies != nullptr && cookies->is_array()) {
      std::string joined;
      for (const JsonValue& c : cookies->items) {
        if (!c.is_string()) continue;
        if (!joined.empty()) joined += "; ";
        joined += c.text;
      }
      if (!joined.empty()) event.headers.emplace_back("cookie", joined);
    }
  } else if (doc->Find("httpMethod") != nullptr) {
    const bool alb = context != nullptr && context->Find("elb") != nullptr;
    event.shape = alb ? Shape::kAlb : Shape::kApiGatewayV1;
    event.method = doc->StringOr("httpMethod", "");
    event.path = doc->StringOr("path", "");
    const JsonValue* multi_query = doc->Find("multiValueQueryStringParameters");
    const JsonValue* query = doc->Find("queryStringParameters");
    const bool encode = !alb;  // ALB query values arrive still URL-encoded
    if (multi_query != nullptr && multi_query->is_object()) {
      event.query = JoinQuery(*multi_query, encode);
    } else if (query != nullptr && query->is_object()) {
      event.query = JoinQuery(*query, encode);
    }
    const JsonValue* multi_headers = doc->Find("multiValueHeaders");
    event.multi_value = multi_headers != nullptr && multi_headers->is_object();
    CollectHeaders(doc->Find("headers"), multi_headers, &event.headers);
  } else {
    *error = "not an HTTP event (API Gateway, HTTP API, Function URL or ALB)";
    return std::nullopt;
  }
  if (event.method.empty() || event.path.empty() || event.path.front() != '/') {
    *error = "event has no HTTP method or path";
    return std::nullopt;
  }

  const JsonValue* body = doc->Find("body");
  if (body != nullptr && body->is_string()) {
    const JsonValue* b64 = doc->Find("isBase64Encoded");
    if (b64 != nullptr && b64->type == JsonValue::Type::kBool && b64->boolean) {
      std::optional<std::string> decoded = Base64Decode(body->text);
      if (!decoded) {
        *error = "body is not valid base64";
        return std::nullopt;
      }
      event.body = std::move(*decoded);
    } else {
      event.body = body->text;
    }
  }
  return event;
}

std::string EncodeHttpReply(const HttpEvent& event, const HttpReply& reply) {
  std::string out = "{\"statusCode\":" + std::to_string(reply.status);
  if (event.shape == Shape::kAlb) {
    out += ",\"statusDescription\":" +
           JsonQuote(std::to_string(reply.status) + " " + reply.reason);
  }
  if (event.multi_value) {
    out += ",\"multiValueHeaders\":{";
    for (size_t i = 0; i < reply.headers.size(); ++i) {
      if (i > 0) out += ",";
      out += JsonQuote(reply.headers[i].first) + ":[" + JsonQuote(reply.headers[i].second) + "]";
    }
  } else {
    out += ",\"headers\":{";
    for (size_t i = 0; i < reply.headers.size(); ++i) {
      if (i > 0) out += ",";
      out += JsonQuote(reply.headers[i].first) + ":" + JsonQuote(reply.headers[i].second);
    }
  }
  out += "},\"body\":" + JsonQuote(reply.body) + ",\"isBase64Encoded\":false}";
  return out;
}

}  // namespace katsubushi::lambda
