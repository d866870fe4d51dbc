// The HTTP API as a pure function from request to response (no sockets), so
// every route is unit-testable and the session only moves bytes.
//
//   GET /id           text/plain "<id>", or {"id":"<id>"} with Accept: application/json
//   GET /ids?n=N      N IDs joined by "\n", or {"ids":["...",...]}; 1 <= N <= kMaxIdsPerRequest
//   GET /stats        indented JSON of the memcached stats (go-katsubushi's shape)
//   GET /metrics      Prometheus text exposition
//   GET /healthz      200 "ok" when IDs can be issued, else 503 and the reason
//   GET /decode?id=N  {"time":...,"unix_ms":...,"worker_id":...,"sequence":...}
// Another method on a known path is 405, an unknown path 404. IDs are JSON
// strings (they exceed 2^53). A generator failure is 503 with the reason
// (go-katsubushi answers 500 with no body).
//
// Thread safety: Route may be called concurrently; the context's members are
// thread-safe.
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <string>
#include <string_view>

#include "katsubushi/generator_core.h"
#include "katsubushi/limits.h"
#include "katsubushi/stats.h"

namespace katsubushi::http {

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;

struct HttpContext {
  GeneratorCore& generator;
  Stats& stats;
  std::string_view version;
  // Whether IDs can be issued now; the reason when not. Defaults to the
  // generator's own check when empty.
  std::function<Status()> health;
  // go-katsubushi's HTTPPathPrefix: routes become /<prefix>id, /<prefix>ids...
  std::string path_prefix;
  // More Prometheus text for /metrics (the worker id lease's counters).
  std::function<std::string()> extra_metrics;
};

Response Route(const Request& request, const HttpContext& context);

}  // namespace katsubushi::http
