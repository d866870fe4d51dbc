#include "http/metrics.h"

#include <charconv>
#include <cmath>
#include <chrono>
#include <cstdint>

namespace katsubushi::http {
namespace {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  void Header(std::string_view name, std::string_view type, std::string_view help) {
    Append("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  void Sample(std::string_view name, std::string_view labels, uint64_t value) {
    Append(name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ");
    out_->append(std::to_string(value));
    out_->push_back('\n');
  }
  void Sample(std::string_view name, double value) {
    Append(name, " ");
    AppendDouble(value);
    out_->push_back('\n');
  }
  void Labeled(std::string_view name, std::string_view label, std::string_view label_value,
               uint64_t value) {
    Append(name, "{", label, "=\"");
    AppendLabelValue(label_value);
    Append("\"} ");
    out_->append(std::to_string(value));
    out_->push_back('\n');
  }
  // A histogram's series for one value of `label`: cumulative buckets, then
  // _sum and _count (the +Inf bucket's value, as the format requires).
  void Histogram(std::string_view name, std::string_view label, std::string_view label_value,
                 const LatencySnapshot& h) {
    // Starts `name``suffix`{label="value" (the caller closes the braces).
    const auto open = [&](std::string_view suffix) {
      Append(name, suffix, "{", label, "=\"");
      AppendLabelValue(label_value);
      Append("\"");
    };
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      cumulative += h.counts[i];
      open("_bucket");
      Append(",le=\"");
      if (i < kLatencyBucketBoundsNanos.size()) {
        AppendDouble(static_cast<double>(kLatencyBucketBoundsNanos[i]) / 1e9);
      } else {
        Append("+Inf");
      }
      Append("\"} ", std::to_string(cumulative), "\n");
    }
    open("_sum");
    Append("} ");
    AppendDouble(static_cast<double>(h.sum_nanos) / 1e9);
    Append("\n");
    open("_count");
    Append("} ", std::to_string(cumulative), "\n");
  }

 private:
  template <typename... Parts>
  void Append(const Parts&... parts) {
    (out_->append(std::string_view(parts)), ...);
  }
  // The shortest text that reads back as the same double, spelled as Go's
  // client library does (strconv 'g'): le="0.0001", le="5e-06", so the bucket
  // labels match other exporters' for the same bounds.
  void AppendDouble(double value) {
    const double magnitude = std::abs(value);
    const bool scientific = (magnitude != 0 && magnitude < 1e-4) || magnitude >= 1e21;
    char text[64];
    const auto [end, ec] = std::to_chars(
        text, text + sizeof text, value,
        scientific ? std::chars_format::scientific : std::chars_format::fixed);
    out_->append(text, end);
  }
  // The exposition format's escapes in a label value: backslash, quote, newline.
  void AppendLabelValue(std::string_view v) {
    for (const char c : v) {
      if (c == '\\') {
        out_->append("\\\\");
      } else if (c == '"') {
        out_->append("\\\"");
      } else if (c == '\n') {
        out_->append("\\n");
      } else {
        out_->push_back(c);
      }
    }
  }

  std::string* out_;
};

// The TLS series, once a certificate is configured. A memcached front's
// handshakes are counted under kMemcacheText and labelled "memcache".
void RenderTls(const StatsSnapshot& s, Writer& w) {
  constexpr std::pair<FrontLabel, std::string_view> kTlsFronts[] = {
      {FrontLabel::kMemcacheText, "memcache"}, {FrontLabel::kHttp, "http"}, {FrontLabel::kGrpc, "grpc"}};
  w.Header("katsubushi_tls_handshakes_total", "counter", "TLS handshakes completed, by front.");
  for (const auto& [front, name] : kTlsFronts) {
    w.Labeled("katsubushi_tls_handshakes_total", "front", name,
              s.tls_handshakes_by_front[static_cast<size_t>(front)]);
  }
  w.Header("katsubushi_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by front and reason (not_tls: a plaintext client).");
  for (const auto& [front, name] : kTlsFronts) {
    for (size_t r = 0; r < kTlsHandshakeFailureCount; ++r) {
      const std::string labels = "front=\"" + std::string(name) + "\",reason=\"" +
                                 std::string(TlsHandshakeFailureName(static_cast<TlsHandshakeFailure>(r))) + "\"";
      w.Sample("katsubushi_tls_handshake_failures_total", labels,
               s.tls_handshake_failures[static_cast<size_t>(front)][r]);
    }
  }
  w.Header("katsubushi_tls_certificate_expiry_timestamp_seconds", "gauge",
           "When the served TLS certificate expires (Unix time).");
  w.Sample("katsubushi_tls_certificate_expiry_timestamp_seconds", "",
           static_cast<uint64_t>(std::max<int64_t>(0, s.tls_certificate_not_after_unix)));
  w.Header("katsubushi_tls_certificate_reloads_total", "counter",
           "Certificate reloads (file change or SIGUSR1) that loaded a new certificate.");
  w.Sample("katsubushi_tls_certificate_reloads_total", "", s.tls_certificate_reloads);
  w.Header("katsubushi_tls_certificate_reload_failures_total", "counter",
           "Changed certificate files that did not load; the previous certificate is still served.");
  w.Sample("katsubushi_tls_certificate_reload_failures_total", "", s.tls_certificate_reload_failures);
}

}  // namespace

std::string RenderMetrics(const StatsSnapshot& s, const GeneratorCore& generator,
                          std::string_view version, bool healthy) {
  std::string out;
  out.reserve(16384);  // about 9 KiB with the histograms
  Writer w(&out);

  w.Header("katsubushi_build_info", "gauge", "Build information; the value is always 1.");
  w.Labeled("katsubushi_build_info", "version", version, 1);
  w.Header("katsubushi_up", "gauge", "1 when the server can issue IDs now, else 0.");
  w.Sample("katsubushi_up", "", healthy ? 1 : 0);
  w.Header("katsubushi_worker_id", "gauge",
           "The worker id in every ID this server issues (the last one held, when none is).");
  w.Sample("katsubushi_worker_id", "", generator.worker_id());
  w.Header("katsubushi_worker_id_held", "gauge",
           "1 while a worker id is held (static, or leased and not lost), else 0.");
  w.Sample("katsubushi_worker_id_held", "", generator.suspended() ? 0 : 1);
  w.Header("katsubushi_uptime_seconds", "gauge", "Seconds since the server started.");
  w.Sample("katsubushi_uptime_seconds", "", static_cast<uint64_t>(s.uptime_seconds));

  w.Header("katsubushi_ids_issued_total", "counter", "IDs issued, by front.");
  for (size_t i = 0; i < kFrontCount; ++i) {
    w.Labeled("katsubushi_ids_issued_total", "front", FrontName(static_cast<FrontLabel>(i)), s.ids_by_front[i]);
  }
  w.Header("katsubushi_get_requests_total", "counter", "Requests for IDs (a multi-key get is one), by front.");
  for (size_t i = 0; i < kFrontCount; ++i) {
    w.Labeled("katsubushi_get_requests_total", "front", FrontName(static_cast<FrontLabel>(i)),
              s.cmd_get_by_front[i]);
  }
  w.Header("katsubushi_issue_failures_total", "counter", "IDs that could not be issued, by reason.");
  for (size_t i = 0; i < kIssueErrorCount; ++i) {
    w.Labeled("katsubushi_issue_failures_total", "reason", IssueErrorName(static_cast<IssueError>(i)),
              s.misses_by_error[i]);
  }
  // gRPC's C++ server has no hook per connection, so the gRPC front counts
  // none: rather no series than a gauge that always reads 0.
  auto counts_connections = [](size_t i) { return static_cast<FrontLabel>(i) != FrontLabel::kGrpc; };
  w.Header("katsubushi_connections", "gauge", "Open connections, by front.");
  for (size_t i = 0; i < kFrontCount; ++i) {
    if (!counts_connections(i)) continue;
    w.Labeled("katsubushi_connections", "front", FrontName(static_cast<FrontLabel>(i)),
              s.curr_connections_by_front[i]);
  }
  w.Header("katsubushi_connections_total", "counter", "Connections accepted, by front.");
  for (size_t i = 0; i < kFrontCount; ++i) {
    if (!counts_connections(i)) continue;
    w.Labeled("katsubushi_connections_total", "front", FrontName(static_cast<FrontLabel>(i)),
              s.total_connections_by_front[i]);
  }

  w.Header("katsubushi_request_duration_seconds", "histogram",
           "Time from a request's last byte read to its reply handed to the socket, by front.");
  for (size_t i = 0; i < kFrontCount; ++i) {
    w.Histogram("katsubushi_request_duration_seconds", "front", FrontName(static_cast<FrontLabel>(i)),
                s.duration_by_front[i]);
  }

  const GeneratorCounters g = generator.counters();
  w.Header("katsubushi_generator_waits_total", "counter",
           "Times a request waited for the clock (a millisecond's sequence was used up).");
  w.Sample("katsubushi_generator_waits_total", "", g.waits);
  w.Header("katsubushi_clock_rollbacks_absorbed_total", "counter",
           "IDs issued while the clock was behind the last ID, within the tolerated step back.");
  w.Sample("katsubushi_clock_rollbacks_absorbed_total", "", g.rollbacks_absorbed);
  w.Header("katsubushi_clock_rollback_errors_total", "counter",
           "Requests refused because the clock was too far behind the last ID.");
  w.Sample("katsubushi_clock_rollback_errors_total", "", g.rollback_errors);

  // The layout's time runs out (2084 for the default layout); alert well ahead.
  const IdLayout& layout = generator.layout();
  const int64_t end_ms = layout.UnixMillisAt(layout.max_tick());
  // The generator's clock, not the system clock: the lease deadline is on
  // it, and it may be ahead of the wall clock (it never steps back).
  const int64_t now_ms = generator.NowUnixMicros() / 1000;
  if (const int64_t until = generator.lease_valid_until_micros(); until != INT64_MAX) {
    w.Header("katsubushi_lease_remaining_seconds", "gauge",
             "Seconds until the worker id lease must be confirmed again to keep issuing.");
    const int64_t left_ms = until / 1000 - now_ms;
    w.Sample("katsubushi_lease_remaining_seconds", "",
             left_ms > 0 && !generator.suspended() ? static_cast<uint64_t>(left_ms / 1000) : 0);
    if (const int64_t confirmed = generator.lease_confirmed_unix_micros(); confirmed > 0) {
      w.Header("katsubushi_lease_confirmation_age_seconds", "gauge",
               "Seconds since the worker id lease was last granted or confirmed (renewals: every second).");
      const int64_t age_ms = now_ms - confirmed / 1000;
      w.Sample("katsubushi_lease_confirmation_age_seconds",
               static_cast<double>(age_ms > 0 ? age_ms : 0) / 1000);
    }
  }
  w.Header("katsubushi_id_time_remaining_seconds", "gauge",
           "Seconds until the ID layout's time field is exhausted.");
  w.Sample("katsubushi_id_time_remaining_seconds", "",
           end_ms > now_ms ? static_cast<uint64_t>((end_ms - now_ms) / 1000) : 0);

  // gRPC reply coalescing (protocols/grpc/reply_coalescer.h): replies that
  // stop being corked under load, or start being uncorkable, after a gRPC
  // upgrade mean it no longer works.
  w.Header("katsubushi_grpc_replies_corked_total", "counter",
           "gRPC replies held behind TCP_CORK and sent with others of their batch.");
  w.Sample("katsubushi_grpc_replies_corked_total", "", s.grpc_replies_corked);
  w.Header("katsubushi_grpc_replies_uncorkable_total", "counter",
           "gRPC replies on a channel gRPC did not name fd:<n>, sent without coalescing.");
  w.Sample("katsubushi_grpc_replies_uncorkable_total", "", s.grpc_replies_uncorkable);
  if (s.tls_enabled) RenderTls(s, w);
  return out;
}

std::string RenderLeaseMetrics(const LeaseMetrics& lease) {
  std::string out;
  Writer w(&out);
  w.Header("katsubushi_lease_acquisitions_total", "counter", "Worker id leases acquired through Redis.");
  w.Sample("katsubushi_lease_acquisitions_total", "", lease.acquisitions);
  w.Header("katsubushi_lease_losses_total", "counter", "Leases found taken by someone else at renewal.");
  w.Sample("katsubushi_lease_losses_total", "", lease.losses);
  w.Header("katsubushi_lease_renew_failures_total", "counter", "Renewals Redis did not answer.");
  w.Sample("katsubushi_lease_renew_failures_total", "", lease.renew_failures);
  w.Header("katsubushi_redis_reconnects_total", "counter",
           "Redis connections dropped and made anew after an error or a failover.");
  w.Sample("katsubushi_redis_reconnects_total", "", lease.redis_reconnects);
  w.Header("katsubushi_redis_replica_ack_failures_total", "counter",
           "Lease writes the Redis replicas did not acknowledge in time (not relied on).");
  w.Sample("katsubushi_redis_replica_ack_failures_total", "", lease.replica_ack_failures);
  w.Header("katsubushi_redis_eviction_possible", "gauge",
           "1 when the Redis holding the lease may evict its keys (maxmemory with an eviction policy).");
  w.Sample("katsubushi_redis_eviction_possible", "", lease.eviction_possible ? 1 : 0);
  return out;
}

}  // namespace katsubushi::http
