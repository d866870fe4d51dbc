// libFuzzer target for the HTTP front's request handling without sockets:
// Beast's request parser with the server's limits, then Route().
//
// Invariants: a request that parses gets a response with a known status and
// a Content-Length equal to its body; a successful /ids body never carries
// more than kMaxIdsPerRequest IDs; parsing never accepts more header bytes
// than the limit.
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <string>

#include "http/http_server.h"
#include "http/router.h"
#include "katsubushi/clock.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace http = boost::beast::http;
  static katsubushi::ManualClock clock(1795305600000LL * 1000);
  static katsubushi::Stats stats;
  static std::unique_ptr<katsubushi::GeneratorCore> generator = [] {
    clock.set_auto_advance(true);
    katsubushi::GeneratorOptions options;
    options.worker_id = 5;
    return std::move(katsubushi::GeneratorCore::Create(clock, options)).value();
  }();
  static const katsubushi::http::HttpContext context{*generator, stats, "1.0.0", {}, {}, {}};

  http::request_parser<http::string_body> parser;
  parser.header_limit(katsubushi::http::HttpOptions::kMaxHeaderBytes);
  parser.body_limit(katsubushi::http::HttpOptions::kMaxBodyBytes);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_done()) return 0;

  const katsubushi::http::Response response = katsubushi::http::Route(parser.get(), context);
  const unsigned status = response.result_int();
  if (status != 200 && status != 400 && status != 404 && status != 405 && status != 503) std::abort();
  const auto length = response[http::field::content_length];
  if (length != std::to_string(response.body().size())) std::abort();
  if (status == 200 && parser.get().target().starts_with("/ids")) {
    size_t ids = 1;
    for (char c : response.body()) ids += (c == '\n' || c == ',');
    if (ids > katsubushi::kMaxIdsPerRequest + 1) std::abort();
  }
  return 0;
}
