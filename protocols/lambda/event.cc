#include "lambda/event.h"

#include "lambda/json.h"

namespace katsubushi::lambda {
namespace {

using Shape = HttpEvent::Shape;

// "k=v&k2=v2" from an object of strings (or of arrays of strings), each
// part passed through `encode` (identity for ALB, whose values are encoded).
std::string JoinQuery(const Json& params, bool encode) {
  std::string out;
  auto add = [&](std::string_view key, std::string_view value) {
    if (!out.empty()) out.push_back('&');
    out += encode ? UrlEncode(key) : std::string(key);
    out.push_back('=');
    out += encode ? UrlEncode(value) : std::string(value);
  };
  for (const auto& [key, value] : params.items()) {
    if (value.is_string()) {
      add(key, value.get_ref<const std::string&>());
    } else if (value.is_array()) {
      for (const Json& item : value) {
        if (item.is_string()) add(key, item.get_ref<const std::string&>());
      }
    }
  }
  return out;
}

void CollectHeaders(const Json* single, const Json* multi, HeaderList* out) {
  if (multi != nullptr && multi->is_object()) {
    for (const auto& [name, values] : multi->items()) {
      if (!values.is_array()) continue;
      for (const Json& v : values) {
        if (v.is_string()) out->emplace_back(name, v.get_ref<const std::string&>());
      }
    }
    return;
  }
  if (single != nullptr && single->is_object()) {
    for (const auto& [name, value] : single->items()) {
      if (value.is_string()) out->emplace_back(name, value.get_ref<const std::string&>());
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
  std::optional<Json> doc = ParseJson(json, error);
  if (!doc) return std::nullopt;
  if (!doc->is_object()) {
    *error = "event is not a JSON object";
    return std::nullopt;
  }
  HttpEvent event;
  const Json* context = FindMember(*doc, "requestContext");
  if (StringMember(*doc, "version", "") == "2.0") {
    event.shape = Shape::kHttpApiV2;
    const Json* http = context != nullptr ? FindMember(*context, "http") : nullptr;
    event.method = http != nullptr ? std::string(StringMember(*http, "method", "")) : "";
    event.path = StringMember(*doc, "rawPath", "");
    event.query = StringMember(*doc, "rawQueryString", "");
    CollectHeaders(FindMember(*doc, "headers"), nullptr, &event.headers);
    if (const Json* cookies = FindMember(*doc, "cookies"); cookies != nullptr && cookies->is_array()) {
      std::string joined;
      for (const Json& c : *cookies) {
        if (!c.is_string()) continue;
        if (!joined.empty()) joined += "; ";
        joined += c.get_ref<const std::string&>();
      }
      if (!joined.empty()) event.headers.emplace_back("cookie", joined);
    }
  } else if (FindMember(*doc, "httpMethod") != nullptr) {
    const bool alb = context != nullptr && FindMember(*context, "elb") != nullptr;
    event.shape = alb ? Shape::kAlb : Shape::kApiGatewayV1;
    event.method = StringMember(*doc, "httpMethod", "");
    event.path = StringMember(*doc, "path", "");
    const Json* multi_query = FindMember(*doc, "multiValueQueryStringParameters");
    const Json* query = FindMember(*doc, "queryStringParameters");
    const bool encode = !alb;  // ALB query values arrive still URL-encoded
    if (multi_query != nullptr && multi_query->is_object()) {
      event.query = JoinQuery(*multi_query, encode);
    } else if (query != nullptr && query->is_object()) {
      event.query = JoinQuery(*query, encode);
    }
    const Json* multi_headers = FindMember(*doc, "multiValueHeaders");
    event.multi_value = multi_headers != nullptr && multi_headers->is_object();
    CollectHeaders(FindMember(*doc, "headers"), multi_headers, &event.headers);
  } else {
    *error = "not an HTTP event (API Gateway, HTTP API, Function URL or ALB)";
    return std::nullopt;
  }
  if (event.method.empty() || event.path.empty() || event.path.front() != '/') {
    *error = "event has no HTTP method or path";
    return std::nullopt;
  }

  const Json* body = FindMember(*doc, "body");
  if (body != nullptr && body->is_string()) {
    const Json* b64 = FindMember(*doc, "isBase64Encoded");
    if (b64 != nullptr && b64->is_boolean() && b64->get<bool>()) {
      std::optional<std::string> decoded = Base64Decode(body->get_ref<const std::string&>());
      if (!decoded) {
        *error = "body is not valid base64";
        return std::nullopt;
      }
      event.body = std::move(*decoded);
    } else {
      event.body = body->get_ref<const std::string&>();
    }
  }
  return event;
}

std::string EncodeHttpReply(const HttpEvent& event, const HttpReply& reply) {
  OrderedJson out = OrderedJson::object();
  out["statusCode"] = reply.status;
  if (event.shape == Shape::kAlb) {
    out["statusDescription"] = std::to_string(reply.status) + " " + reply.reason;
  }
  OrderedJson headers = OrderedJson::object();
  for (const auto& [name, value] : reply.headers) {
    // A repeated header: the last one in the single-value shape, every one
    // in the multi-value shape.
    if (event.multi_value) {
      headers[name].push_back(value);
    } else {
      headers[name] = value;
    }
  }
  out[event.multi_value ? "multiValueHeaders" : "headers"] = std::move(headers);
  out["body"] = reply.body;
  out["isBase64Encoded"] = false;
  return DumpJson(out);
}

}  // namespace katsubushi::lambda
