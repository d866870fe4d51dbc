// katsubushi-grpc-bench: unary Fetch (or FetchMulti) load with a fixed number
// of calls in flight, through grpc++'s async completion-queue client API on
// one thread (the callback API's thread hand-offs made the client, not the
// server, the bottleneck: ~62k calls/s where h2load reaches 114k).
//
//   katsubushi-grpc-bench --target=127.0.0.1:50051 --concurrency=50 --duration=5 [--n=0] [--channels=1]
//
// --channels=N opens N channels, each on its own TCP connection, and spreads
// the calls in flight over them round-robin (50 channels x 1 call is the
// "50 connections x 1 stream" shape of bench/compare_grpc.py).
//
// Prints one line of JSON: calls/s, IDs/s, p50/p99/p999 latency in
// microseconds over the measured period, and all_calls, every call that
// completed including warm-up (what server CPU read around the whole run is
// divided by).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "katsubushi.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string target = "127.0.0.1:50051";
  int concurrency = 50;
  int channels = 1;
  double duration_s = 5;
  double warmup_s = 1;
  uint32_t n = 0;  // 0: Fetch; otherwise FetchMulti{n}
};

class Load {
 public:
  Load(const Options& o, std::vector<std::unique_ptr<katsubushi::Generator::Stub>>& stubs)
      : options_(o), stubs_(stubs), measure_from_(Clock::now() + Seconds(o.warmup_s)),
        stop_at_(measure_from_ + Seconds(o.duration_s)) {}

  // Keeps `concurrency` calls in flight until the end, on this thread.
  void Run() {
    // Call slot i always goes through channel i % channels, so every channel
    // keeps the same share of the calls in flight.
    for (int i = 0; i < options_.concurrency; ++i) {
      Start(*stubs_[static_cast<size_t>(i) % stubs_.size()]);
    }
    void* tag = nullptr;
    bool ok = false;
    while (in_flight_ > 0 && queue_.Next(&tag, &ok)) Finish(static_cast<Call*>(tag));
    queue_.Shutdown();
    while (queue_.Next(&tag, &ok)) {
    }
  }

  void Report() {
    std::sort(latencies_ns_.begin(), latencies_ns_.end());
    auto pct = [this](double p) {
      if (latencies_ns_.empty()) return 0.0;
      const size_t i = std::min(latencies_ns_.size() - 1, static_cast<size_t>(p / 100.0 * latencies_ns_.size()));
      return static_cast<double>(latencies_ns_[i]) / 1000.0;
    };
    const double calls = static_cast<double>(latencies_ns_.size());
    std::printf("{\"concurrency\":%d,\"n\":%u,\"seconds\":%.3f,\"calls\":%.0f,\"calls_per_second\":%.0f,"
                "\"ids_per_second\":%.0f,\"errors\":%llu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
                "\"channels\":%d,\"all_calls\":%llu}\n",
                options_.concurrency, options_.n, options_.duration_s, calls, calls / options_.duration_s,
                static_cast<double>(ids_) / options_.duration_s, static_cast<unsigned long long>(errors_),
                pct(50), pct(99), pct(99.9), options_.channels, static_cast<unsigned long long>(all_calls_));
  }

 private:
  static Clock::duration Seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  struct Call {
    grpc::ClientContext context;
    grpc::Status status;
    katsubushi::FetchResponse response;
    katsubushi::FetchMultiResponse multi_response;
    std::unique_ptr<grpc::ClientAsyncResponseReader<katsubushi::FetchResponse>> reader;
    std::unique_ptr<grpc::ClientAsyncResponseReader<katsubushi::FetchMultiResponse>> multi_reader;
    katsubushi::Generator::Stub* stub;
    Clock::time_point started;
  };

  void Start(katsubushi::Generator::Stub& stub) {
    ++in_flight_;
    auto* call = new Call;
    call->stub = &stub;
    call->started = Clock::now();
    if (options_.n == 0) {
      call->reader = stub.AsyncFetch(&call->context, fetch_request_, &queue_);
      call->reader->Finish(&call->response, &call->status, call);
    } else {
      call->multi_reader = stub.AsyncFetchMulti(&call->context, multi_request_, &queue_);
      call->multi_reader->Finish(&call->multi_response, &call->status, call);
    }
  }

  void Finish(Call* call) {
    const auto now = Clock::now();
    --in_flight_;
    ++all_calls_;
    if (now >= measure_from_ && now < stop_at_) {
      latencies_ns_.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(now - call->started).count());
      if (!call->status.ok()) ++errors_;
      ids_ += options_.n == 0 ? 1 : static_cast<uint64_t>(call->multi_response.ids_size());
    }
    katsubushi::Generator::Stub& stub = *call->stub;
    delete call;
    if (now < stop_at_) Start(stub);
  }

  const Options& options_;
  std::vector<std::unique_ptr<katsubushi::Generator::Stub>>& stubs_;
  const Clock::time_point measure_from_;
  const Clock::time_point stop_at_;
  grpc::CompletionQueue queue_;
  const katsubushi::FetchRequest fetch_request_;
  katsubushi::FetchMultiRequest multi_request_ = [this] {
    katsubushi::FetchMultiRequest r;
    r.set_n(options_.n);
    return r;
  }();
  int in_flight_ = 0;
  std::vector<int64_t> latencies_ns_;
  uint64_t ids_ = 0;
  uint64_t errors_ = 0;
  uint64_t all_calls_ = 0;
};

// Channels with equal arguments share one subchannel, hence one TCP
// connection, through gRPC's global subchannel pool; a local pool per channel
// gives each its own connection.
std::vector<std::unique_ptr<katsubushi::Generator::Stub>> Stubs(const Options& o) {
  std::vector<std::unique_ptr<katsubushi::Generator::Stub>> stubs;
  for (int i = 0; i < o.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(katsubushi::Generator::NewStub(
        grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    const std::string name = a.substr(0, eq), value = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (name == "--target") o.target = value;
    else if (name == "--concurrency") o.concurrency = std::atoi(value.c_str());
    else if (name == "--duration") o.duration_s = std::atof(value.c_str());
    else if (name == "--warmup") o.warmup_s = std::atof(value.c_str());
    else if (name == "--channels") o.channels = std::atoi(value.c_str());
    else if (name == "--n") o.n = static_cast<uint32_t>(std::atoi(value.c_str()));
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.concurrency < 1 || o.channels < 1 || o.channels > o.concurrency) {
    std::fprintf(stderr, "need 1 <= --channels <= --concurrency\n");
    return 2;
  }
  auto stubs = Stubs(o);
  Load load(o, stubs);
  load.Run();
  load.Report();
  return 0;
}
