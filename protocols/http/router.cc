#include "http/router.h"

#include <charconv>
#include <optional>
#include <vector>

#include "http/metrics.h"
#include "katsubushi/hex.h"
#include "katsubushi/issuer.h"
#include "katsubushi/time_format.h"

namespace katsubushi::http {
namespace {

using beast_http::field;
using beast_http::status;
using beast_http::verb;

struct Target {
  std::string_view path;
  std::string_view query;
};

Target SplitTarget(std::string_view target) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

// The first value of `name` in a query string, percent-decoded ("+" is a
// space), as Go's FormValue gives it; nullopt when absent.
std::optional<std::string> QueryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    const std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::string value;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        value.push_back(' ');
      } else if (raw[i] == '%' && i + 2 < raw.size() && HexValue(raw[i + 1]) >= 0 &&
                 HexValue(raw[i + 2]) >= 0) {
        value.push_back(static_cast<char>(HexValue(raw[i + 1]) * 16 + HexValue(raw[i + 2])));
        i += 2;
      } else {
        value.push_back(raw[i]);
      }
    }
    return value;
  }
  return std::nullopt;
}

bool WantsJson(const Request& request) {
  const auto accept = request.find(field::accept);
  return accept != request.end() &&
         std::string_view(accept->value().data(), accept->value().size()).find("application/json") !=
             std::string_view::npos;
}

Response MakeResponse(const Request& request, status code, std::string_view content_type,
                      std::string body) {
  Response response(code, request.version());
  if (!content_type.empty()) {
    response.set(field::content_type, boost::beast::string_view(content_type.data(), content_type.size()));
  }
  response.body() = std::move(body);
  response.keep_alive(request.keep_alive());
  response.prepare_payload();
  return response;
}

Response Error(const Request& request, status code, std::string_view message) {
  std::string body(message);
  body.push_back('\n');
  return MakeResponse(request, code, "text/plain", std::move(body));
}

void AppendId(uint64_t id, std::string* out) {
  char digits[20];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, id);
  out->append(digits, end);
}

Response IssueFailure(const Request& request, const Status& error) {
  return Error(request, status::service_unavailable, error.message());
}

Issuer HttpIssuer(const HttpContext& context) {
  return Issuer(context.generator, context.stats, FrontLabel::kHttp);
}

Response GetId(const Request& request, const HttpContext& context) {
  const Result<uint64_t> id = HttpIssuer(context).Next();
  if (!id.ok()) return IssueFailure(request, id.status());
  std::string body;
  if (WantsJson(request)) {
    body = "{\"id\":\"";
    AppendId(*id, &body);
    body += "\"}";
    return MakeResponse(request, status::ok, "application/json", std::move(body));
  }
  AppendId(*id, &body);
  return MakeResponse(request, status::ok, "text/plain", std::move(body));
}

Response GetIds(const Request& request, const HttpContext& context, std::string_view query) {
  Issuer issuer = HttpIssuer(context);
  uint64_t n = 1;
  if (const std::optional<std::string> text = QueryValue(query, "n"); text && !text->empty()) {
    int64_t parsed = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), parsed);
    if (ec != std::errc() || end != text->data() + text->size()) {
      issuer.CountRefused();
      return Error(request, status::bad_request,
                   "n must be a number between 1 and " + std::to_string(kMaxIdsPerRequest));
    }
    if (parsed < 1) {
      issuer.CountRefused();
      return Error(request, status::bad_request, "n must be at least 1");
    }
    if (static_cast<uint64_t>(parsed) > kMaxIdsPerRequest) {
      issuer.CountRefused();
      // go-katsubushi's message.
      return Error(request, status::bad_request,
                   "too many IDs requested: " + std::to_string(parsed) +
                       ", n should be smaller than " + std::to_string(kMaxIdsPerRequest));
    }
    n = static_cast<uint64_t>(parsed);
  }
  std::vector<uint64_t> ids(n);
  if (const Status s = issuer.NextN(ids); !s.ok()) return IssueFailure(request, s);
  std::string body;
  body.reserve(n * 24 + 16);
  const bool json = WantsJson(request);
  if (json) body = "{\"ids\":[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) body += json ? "," : "\n";
    if (json) body += '"';
    AppendId(ids[i], &body);
    if (json) body += '"';
  }
  if (json) {
    body += "]}\n";  // go-katsubushi's json.Encoder ends with a newline
    return MakeResponse(request, status::ok, "application/json", std::move(body));
  }
  return MakeResponse(request, status::ok, "text/plain", std::move(body));
}

Response GetStats(const Request& request, const HttpContext& context) {
  const StatsSnapshot s = context.stats.Snapshot();
  // json.Encoder with SetIndent("", "  "), as go-katsubushi writes it.
  std::string body = "{\n";
  auto number = [&body](std::string_view name, auto value, bool last = false) {
    body += "  \"";
    body += name;
    body += "\": ";
    body += std::to_string(value);
    body += last ? "\n" : ",\n";
  };
  number("pid", s.pid);
  number("uptime", s.uptime_seconds);
  number("time", s.unix_time);
  body += "  \"version\": \"";
  body += context.version;
  body += "\",\n";
  number("curr_connections", s.curr_connections);
  number("total_connections", s.total_connections);
  number("cmd_get", s.cmd_get);
  number("get_hits", s.get_hits);
  number("get_misses", s.get_misses, true);
  body += "}\n";
  return MakeResponse(request, status::ok, "application/json", std::move(body));
}

Status Health(const HttpContext& context) {
  return context.health ? context.health() : context.generator.CanIssue();
}

Response GetHealthz(const Request& request, const HttpContext& context) {
  const Status health = Health(context);
  if (health.ok()) return MakeResponse(request, status::ok, "text/plain", "ok\n");
  return Error(request, status::service_unavailable, health.message());
}

Response GetMetrics(const Request& request, const HttpContext& context) {
  std::string text = RenderMetrics(context.stats.Snapshot(), context.generator, context.version,
                                   Health(context).ok());
  if (context.extra_metrics) text += context.extra_metrics();
  return MakeResponse(request, status::ok, kMetricsContentType, std::move(text));
}

Response GetDecode(const Request& request, const HttpContext& context, std::string_view query) {
  const std::optional<std::string> text = QueryValue(query, "id");
  uint64_t id = 0;
  if (!text || text->empty() ||
      std::from_chars(text->data(), text->data() + text->size(), id).ptr != text->data() + text->size()) {
    return Error(request, status::bad_request, "id must be a decimal unsigned 64-bit integer");
  }
  const IdLayout& layout = context.generator.layout();
  if (id > layout.max_id()) {
    return Error(request, status::bad_request, "id is larger than the ID layout allows");
  }
  const IdParts parts = layout.Decode(id);
  std::string body = "{\"id\":\"" + *text + "\",\"time\":\"" + FormatRfc3339Millis(parts.unix_millis) +
                     "\",\"unix_ms\":" + std::to_string(parts.unix_millis) +
                     ",\"worker_id\":" + std::to_string(parts.worker_id) +
                     ",\"sequence\":" + std::to_string(parts.sequence) + "}\n";
  return MakeResponse(request, status::ok, "application/json", std::move(body));
}

}  // namespace

Response Route(const Request& request, const HttpContext& context) {
  const Target target = SplitTarget(std::string_view(request.target().data(), request.target().size()));
  std::string_view path = target.path;
  if (path.empty() || path[0] != '/') return Error(request, status::bad_request, "bad request target");
  path.remove_prefix(1);
  if (!context.path_prefix.empty()) {
    if (!path.starts_with(context.path_prefix)) return Error(request, status::not_found, "not found");
    path.remove_prefix(context.path_prefix.size());
  }
  enum class Endpoint { kId, kIds, kStats, kMetrics, kHealthz, kDecode, kNone };
  Endpoint route = Endpoint::kNone;
  if (path == "id") route = Endpoint::kId;
  else if (path == "ids") route = Endpoint::kIds;
  else if (path == "stats") route = Endpoint::kStats;
  else if (path == "metrics") route = Endpoint::kMetrics;
  else if (path == "healthz") route = Endpoint::kHealthz;
  else if (path == "decode") route = Endpoint::kDecode;
  if (route == Endpoint::kNone) return Error(request, status::not_found, "not found");
  if (request.method() != verb::get) {
    Response r = MakeResponse(request, status::method_not_allowed, "", "");
    r.set(field::allow, "GET");
    return r;
  }
  switch (route) {
    case Endpoint::kId: return GetId(request, context);
    case Endpoint::kIds: return GetIds(request, context, target.query);
    case Endpoint::kStats: return GetStats(request, context);
    case Endpoint::kMetrics: return GetMetrics(request, context);
    case Endpoint::kHealthz: return GetHealthz(request, context);
    case Endpoint::kDecode: return GetDecode(request, context, target.query);
    case Endpoint::kNone: break;
  }
  return Error(request, status::not_found, "not found");
}

}  // namespace katsubushi::http
