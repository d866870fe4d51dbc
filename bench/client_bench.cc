// Client Fetch throughput and latency: T threads share one katsubushi::Client
// and call Fetch (or FetchMulti(n)) back to back for a fixed time against the
// servers given. Prints one line: calls/s, IDs/s and latency percentiles.
// bench/compare_client.py runs it against local servers.
//
//   katsubushi-client-bench --server=127.0.0.1:11212 --threads=8 --seconds=5 [--n=1]
//   katsubushi-client-bench --server=tls://127.0.0.1:11212 --tls-ca-file=ca.crt   # over TLS
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "katsubushi/client/client.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::vector<std::string> servers;
  int threads = 1;
  double seconds = 5;
  size_t n = 1;
  std::string tls_ca_file;  // for tls:// and https:// servers
};

bool ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> const char* {
      return arg.starts_with(name) ? argv[i] + name.size() : nullptr;
    };
    if (const char* v = value("--server=")) {
      args->servers.emplace_back(v);
    } else if (const char* t = value("--threads=")) {
      args->threads = std::atoi(t);
    } else if (const char* s = value("--seconds=")) {
      args->seconds = std::atof(s);
    } else if (const char* n = value("--n=")) {
      args->n = static_cast<size_t>(std::atoi(n));
    } else if (const char* ca = value("--tls-ca-file=")) {
      args->tls_ca_file = ca;
    } else {
      return false;
    }
  }
  return !args->servers.empty() && args->threads > 0 && args->seconds > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr, "usage: %s --server=ADDR... [--threads=N] [--seconds=S] [--n=IDS] [--tls-ca-file=PEM]\n",
                 argv[0]);
    return 2;
  }
  katsubushi::ClientOptions options;
  options.servers = args.servers;
  options.tls.ca_file = args.tls_ca_file;
  std::string open_error;
  auto opened = katsubushi::Client::Open(options, &open_error);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s %s\n", std::string(opened.status().message()).c_str(), open_error.c_str());
    return 2;
  }
  katsubushi::Client& client = *opened.value();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<uint32_t>> latencies_ns(static_cast<size_t>(args.threads));
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int t = 0; t < args.threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint64_t> ids(args.n);
      std::string why;
      auto& mine = latencies_ns[static_cast<size_t>(t)];
      mine.reserve(1 << 20);
      while (!stop.load(std::memory_order_relaxed)) {
        const auto t0 = Clock::now();
        const katsubushi::Status s = client.FetchMulti(ids, &why);
        const auto t1 = Clock::now();
        if (!s.ok() && errors.fetch_add(1, std::memory_order_relaxed) == 0) {
          std::fprintf(stderr, "first error: %s\n", why.c_str());
        }
        mine.push_back(static_cast<uint32_t>(
            std::min<int64_t>(std::chrono::nanoseconds(t1 - t0).count(), UINT32_MAX)));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(args.seconds));
  stop.store(true);
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<uint32_t> all;
  for (auto& v : latencies_ns) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())))] / 1000.0;
  };
  std::printf("calls=%zu calls_per_s=%.0f ids_per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%llu\n",
              all.size(), static_cast<double>(all.size()) / elapsed,
              static_cast<double>(all.size() * args.n) / elapsed, pct(0.50), pct(0.99), pct(0.999),
              static_cast<unsigned long long>(errors.load()));
  return errors.load() == 0 ? 0 : 1;
}
