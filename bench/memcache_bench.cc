// Protocol microbenchmarks: the cost of answering requests in a
// memcache::Session, without sockets (what the server adds on top of the
// kernel). Uses a clock that never makes the generator wait.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"
#include "memcache/session.h"

namespace katsubushi::memcache {
namespace {

// 1000x fast: one real microsecond is one fake millisecond.
class FastClock final : public Clock {
 public:
  int64_t NowUnixMicros() override {
    return base_ + std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count() / 1;
  }
  void WaitUntil(int64_t) override {}

 private:
  const int64_t base_ = SystemClock::Instance().NowUnixMicros() -
                        std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
};

void Run(benchmark::State& state, const std::string& request, uint64_t ids_per_request) {
  FastClock clock;
  GeneratorOptions options;
  options.worker_id = 1;
  auto generator = std::move(GeneratorCore::Create(clock, options)).value();
  Stats stats;
  const ServiceContext context{*generator, stats, "0.0.0"};
  auto session = NewSession(static_cast<uint8_t>(request[0]), context);
  std::string out;
  for (auto _ : state) {
    out.clear();
    const ProcessResult r = session->Process(request, &out);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ids_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations() * ids_per_request), benchmark::Counter::kIsRate);
}

void BM_TextGet1(benchmark::State& state) { Run(state, "get id\r\n", 1); }
BENCHMARK(BM_TextGet1);

void BM_TextGet100(benchmark::State& state) {
  std::string request = "get";
  for (int i = 0; i < 100; ++i) request += " id";
  Run(state, request + "\r\n", 100);
}
BENCHMARK(BM_TextGet100);

void BM_BinaryGet(benchmark::State& state) {
  std::string request(24, '\0');
  request[0] = static_cast<char>(0x80);
  request[3] = 2;
  request[11] = 2;
  Run(state, request + "id", 1);
}
BENCHMARK(BM_BinaryGet);

}  // namespace
}  // namespace katsubushi::memcache

BENCHMARK_MAIN();
