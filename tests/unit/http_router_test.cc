#include "http/router.h"

#include <gtest/gtest.h>

#include "http/metrics.h"
#include "katsubushi/clock.h"

namespace katsubushi::http {
namespace {

constexpr int64_t kNowMillis = 1795305600000;  // 2026-11-22T00:00:00Z
constexpr uint32_t kWorker = 12;

class HttpRouterTest : public ::testing::Test {
 protected:
  HttpRouterTest()
      : generator_(std::move(GeneratorCore::Create(clock_, Options())).value()),
        context_{*generator_, stats_, "7.7.7", {}, {}, {}} {}

  static GeneratorOptions Options() {
    GeneratorOptions o;
    o.worker_id = kWorker;
    return o;
  }
  Response Get(std::string_view target, std::string_view accept = {},
               beast_http::verb method = beast_http::verb::get) {
    Request r(method, std::string(target), 11);
    if (!accept.empty()) r.set(beast_http::field::accept, std::string(accept));
    return Route(r, context_);
  }
  std::string Id(uint32_t n) {
    return std::to_string(
        IdLayout::Default().Compose(static_cast<uint64_t>(IdLayout::Default().TickAt(kNowMillis)), kWorker, n));
  }
  std::string ContentType(const Response& r) { return std::string(r[beast_http::field::content_type]); }

  ManualClock clock_{kNowMillis * 1000};
  Stats stats_;
  std::unique_ptr<GeneratorCore> generator_;
  HttpContext context_;
};

TEST_F(HttpRouterTest, IdAsTextAndJson) {
  Response r = Get("/id");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(ContentType(r), "text/plain");
  EXPECT_EQ(r.body(), Id(0));
  r = Get("/id", "application/json");
  EXPECT_EQ(ContentType(r), "application/json");
  EXPECT_EQ(r.body(), "{\"id\":\"" + Id(1) + "\"}");
  r = Get("/id", "text/html, application/json;q=0.9");
  EXPECT_EQ(r.body(), "{\"id\":\"" + Id(2) + "\"}");
}

TEST_F(HttpRouterTest, IdsJoinedByNewlineOrJsonStrings) {
  Response r = Get("/ids?n=3");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), Id(0) + "\n" + Id(1) + "\n" + Id(2));
  r = Get("/ids");
  EXPECT_EQ(r.body(), Id(3));
  r = Get("/ids?n=2", "application/json");
  EXPECT_EQ(r.body(), "{\"ids\":[\"" + Id(4) + "\",\"" + Id(5) + "\"]}\n");
  r = Get("/ids?x=1&n=%32");  // percent-encoded "2"
  EXPECT_EQ(r.body(), Id(6) + "\n" + Id(7));
  r = Get("/ids?n=1000");
  EXPECT_EQ(std::count(r.body().begin(), r.body().end(), '\n'), 999);
}

TEST_F(HttpRouterTest, BadCountsAre400WithOneLine) {
  for (const char* target : {"/ids?n=abc", "/ids?n=0", "/ids?n=-5", "/ids?n=1001", "/ids?n=1e3",
                             "/ids?n=99999999999999999999"}) {
    const Response r = Get(target);
    EXPECT_EQ(r.result_int(), 400) << target;
    EXPECT_EQ(std::count(r.body().begin(), r.body().end(), '\n'), 1) << target;
  }
  EXPECT_EQ(Get("/ids?n=1001").body(), "too many IDs requested: 1001, n should be smaller than 1000\n");
  EXPECT_EQ(stats_.Snapshot().get_hits, 0u);
}

TEST_F(HttpRouterTest, StatsIsGoIndentedJson) {
  Get("/id");
  const Response r = Get("/stats");
  EXPECT_EQ(ContentType(r), "application/json");
  const std::string& b = r.body();
  EXPECT_EQ(b.rfind("{\n  \"pid\": ", 0), 0u) << b;
  EXPECT_NE(b.find("\n  \"version\": \"7.7.7\",\n  \"curr_connections\": 0,\n  \"total_connections\": 0,\n"
                   "  \"cmd_get\": 1,\n  \"get_hits\": 1,\n  \"get_misses\": 0\n}\n"),
            std::string::npos)
      << b;
}

TEST_F(HttpRouterTest, OtherMethodsAre405UnknownPaths404) {
  EXPECT_EQ(Get("/id", {}, beast_http::verb::post).result_int(), 405);
  EXPECT_EQ(Get("/ids", {}, beast_http::verb::put).result_int(), 405);
  EXPECT_EQ(Get("/stats", {}, beast_http::verb::delete_).result_int(), 405);
  EXPECT_EQ(Get("/nope").result_int(), 404);
  EXPECT_EQ(Get("/").result_int(), 404);
  EXPECT_EQ(Get("*").result_int(), 400);
}

TEST_F(HttpRouterTest, GeneratorFailureIs503AndCounted) {
  Get("/id");
  clock_.SetMillis(kNowMillis - 1000);
  Response r = Get("/id");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(r.body(), "clock moved backwards\n");
  r = Get("/ids?n=10");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(stats_.Snapshot().get_misses, 11u);
  EXPECT_EQ(Get("/healthz").result_int(), 503);
  EXPECT_NE(Get("/metrics").body().find("katsubushi_up 0\n"), std::string::npos);
  clock_.SetMillis(kNowMillis + 1);
  EXPECT_EQ(Get("/healthz").result_int(), 200);
}

TEST_F(HttpRouterTest, HealthzUsesTheHealthCallback) {
  EXPECT_EQ(Get("/healthz").body(), "ok\n");
  context_.health = [] { return Status(StatusCode::kUnavailable, "no worker id yet"); };
  const Response r = Get("/healthz");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(r.body(), "no worker id yet\n");
}

TEST_F(HttpRouterTest, MetricsExposition) {
  Get("/ids?n=5");
  const Response r = Get("/metrics");
  EXPECT_EQ(ContentType(r), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* line : {"katsubushi_ids_issued_total{front=\"http\"} 5\n",
                           "katsubushi_get_requests_total{front=\"http\"} 1\n",
                           "katsubushi_worker_id 12\n", "katsubushi_up 1\n",
                           "katsubushi_build_info{version=\"7.7.7\"} 1\n",
                           "# TYPE katsubushi_issue_failures_total counter\n",
                           "katsubushi_issue_failures_total{reason=\"clock_moved_backwards\"} 0\n",
                           "katsubushi_generator_waits_total 0\n",
                           "katsubushi_connections{front=\"memcache_binary\"} 0\n"}) {
    EXPECT_NE(r.body().find(line), std::string::npos) << line;
  }
  // No connection series for gRPC: it has no per-connection hook to count with.
  EXPECT_EQ(r.body().find("katsubushi_connections{front=\"grpc\"}"), std::string::npos);
}

TEST_F(HttpRouterTest, MetricsLabelValuesAreEscaped) {
  // The exposition format's three escapes; anything else would end the value
  // or the line and make the whole scrape unparseable.
  const std::string text = RenderMetrics(stats_.Snapshot(), *generator_, "1\"2\\3\n4", true);
  EXPECT_NE(text.find("katsubushi_build_info{version=\"1\\\"2\\\\3\\n4\"} 1\n"), std::string::npos)
      << text;
}

TEST(MetricsTest, LeaseRemainingIsOnTheGeneratorsClock) {
  // The generator's clock is days behind the system clock here (a host whose
  // wall clock was stepped forward while the generator kept its own time):
  // the lease deadline is on the generator's clock, so is what is left of it.
  ManualClock clock(kNowMillis * 1000);
  GeneratorOptions options;
  options.start_suspended = true;
  auto generator = std::move(GeneratorCore::Create(clock, options)).value();
  ASSERT_TRUE(generator->Resume(kWorker, (kNowMillis + 7'500) * 1000).ok());
  Stats stats;
  std::string text = RenderMetrics(stats.Snapshot(), *generator, "v", true);
  EXPECT_NE(text.find("katsubushi_lease_remaining_seconds 7\n"), std::string::npos) << text;
  clock.AdvanceMillis(5'000);
  text = RenderMetrics(stats.Snapshot(), *generator, "v", true);
  EXPECT_NE(text.find("katsubushi_lease_remaining_seconds 2\n"), std::string::npos) << text;
}

TEST(MetricsTest, LeaseConfirmationAgeCountsFromTheLastRenewal) {
  ManualClock clock(kNowMillis * 1000);
  GeneratorOptions options;
  options.start_suspended = true;
  auto generator = std::move(GeneratorCore::Create(clock, options)).value();
  Stats stats;
  EXPECT_EQ(RenderMetrics(stats.Snapshot(), *generator, "v", true).find("confirmation_age"),
            std::string::npos);  // no lease yet
  ASSERT_TRUE(generator->Resume(kWorker, (kNowMillis + 60'000) * 1000).ok());
  clock.AdvanceMillis(2'500);
  std::string text = RenderMetrics(stats.Snapshot(), *generator, "v", true);
  EXPECT_NE(text.find("katsubushi_lease_confirmation_age_seconds 2.5\n"), std::string::npos) << text;
  generator->ExtendLease((kNowMillis + 62'500) * 1000);  // a renewal
  clock.AdvanceMillis(250);
  text = RenderMetrics(stats.Snapshot(), *generator, "v", true);
  EXPECT_NE(text.find("katsubushi_lease_confirmation_age_seconds 0.25\n"), std::string::npos) << text;
  generator->ExtendLease(INT64_MIN);  // could not be confirmed: revoked, not confirmed
  clock.AdvanceMillis(1'000);
  text = RenderMetrics(stats.Snapshot(), *generator, "v", true);
  EXPECT_NE(text.find("katsubushi_lease_confirmation_age_seconds 1.25\n"), std::string::npos) << text;
}

TEST(MetricsTest, RequestDurationHistogramPerFront) {
  ManualClock clock(kNowMillis * 1000);
  auto generator = std::move(GeneratorCore::Create(clock, GeneratorOptions{.worker_id = kWorker})).value();
  Stats stats;
  stats.ObserveDuration(FrontLabel::kMemcacheText, std::chrono::microseconds(3), 4);  // a batch of 4
  stats.ObserveDuration(FrontLabel::kMemcacheText, std::chrono::microseconds(5));     // le is inclusive
  stats.ObserveDuration(FrontLabel::kMemcacheText, std::chrono::microseconds(40));
  stats.ObserveDuration(FrontLabel::kMemcacheText, std::chrono::seconds(3));  // beyond the last bound
  const std::string text = RenderMetrics(stats.Snapshot(), *generator, "v", true);
  for (const char* line :
       {"# TYPE katsubushi_request_duration_seconds histogram\n",
        "katsubushi_request_duration_seconds_bucket{front=\"memcache_text\",le=\"5e-06\"} 5\n",
        "katsubushi_request_duration_seconds_bucket{front=\"memcache_text\",le=\"1e-05\"} 5\n",
        "katsubushi_request_duration_seconds_bucket{front=\"memcache_text\",le=\"5e-05\"} 6\n",
        "katsubushi_request_duration_seconds_bucket{front=\"memcache_text\",le=\"0.0001\"} 6\n",
        "katsubushi_request_duration_seconds_bucket{front=\"memcache_text\",le=\"0.0005\"} 6\n",
        "katsubushi_request_duration_seconds_bucket{front=\"memcache_text\",le=\"1\"} 6\n",
        "katsubushi_request_duration_seconds_bucket{front=\"memcache_text\",le=\"+Inf\"} 7\n",
        "katsubushi_request_duration_seconds_sum{front=\"memcache_text\"} 3.000057\n",
        "katsubushi_request_duration_seconds_count{front=\"memcache_text\"} 7\n",
        "katsubushi_request_duration_seconds_bucket{front=\"grpc\",le=\"+Inf\"} 0\n",
        "katsubushi_request_duration_seconds_count{front=\"http\"} 0\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  }
}

TEST(MetricsTest, TlsSeriesOnlyOnceACertificateIsLoaded) {
  ManualClock clock(kNowMillis * 1000);
  auto generator = std::move(GeneratorCore::Create(clock, GeneratorOptions{.worker_id = kWorker})).value();
  Stats stats;
  EXPECT_EQ(RenderMetrics(stats.Snapshot(), *generator, "v", true).find("katsubushi_tls_"), std::string::npos);
  stats.TlsCertificateLoaded(1796334149, /*reloaded=*/false);
  stats.CountTlsHandshake(FrontLabel::kMemcacheText);
  stats.CountTlsHandshake(FrontLabel::kHttp);
  stats.CountTlsHandshakeFailure(FrontLabel::kHttp, TlsHandshakeFailure::kNotTls);
  stats.CountTlsHandshakeFailure(FrontLabel::kGrpc, TlsHandshakeFailure::kClientCertificate);
  stats.TlsCertificateLoaded(1796334150, /*reloaded=*/true);
  stats.CountTlsReloadFailure();
  const std::string text = RenderMetrics(stats.Snapshot(), *generator, "v", true);
  for (const char* line :
       {"katsubushi_tls_handshakes_total{front=\"memcache\"} 1\n",
        "katsubushi_tls_handshakes_total{front=\"http\"} 1\n",
        "katsubushi_tls_handshakes_total{front=\"grpc\"} 0\n",
        "katsubushi_tls_handshake_failures_total{front=\"http\",reason=\"not_tls\"} 1\n",
        "katsubushi_tls_handshake_failures_total{front=\"grpc\",reason=\"client_certificate\"} 1\n",
        "katsubushi_tls_handshake_failures_total{front=\"memcache\",reason=\"timeout\"} 0\n",
        "katsubushi_tls_certificate_expiry_timestamp_seconds 1796334150\n",
        "katsubushi_tls_certificate_reloads_total 1\n",
        "katsubushi_tls_certificate_reload_failures_total 1\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  }
}

TEST_F(HttpRouterTest, Decode) {
  Response r = Get("/decode?id=283890203179880448");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(),
            "{\"id\":\"283890203179880448\",\"time\":\"2017-02-22T09:18:18.863Z\",\"unix_ms\":1487755098863,"
            "\"worker_id\":1,\"sequence\":0}\n");
  for (const char* bad : {"/decode", "/decode?id=", "/decode?id=x1", "/decode?id=-1",
                          "/decode?id=9223372036854775808"}) {
    EXPECT_EQ(Get(bad).result_int(), 400) << bad;
  }
}

TEST_F(HttpRouterTest, PathPrefix) {
  context_.path_prefix = "katsubushi/";
  EXPECT_EQ(Get("/katsubushi/id").result_int(), 200);
  EXPECT_EQ(Get("/id").result_int(), 404);
}

}  // namespace
}  // namespace katsubushi::http
