#include "grpc_test_backend.h"

#include <atomic>

#include "grpc/core_backend.h"
#include "katsubushi/clock.h"

namespace katsubushi::grpc_api::testing {
namespace {

class CoreTestBackend final : public TestBackend {
 public:
  explicit CoreTestBackend(uint32_t worker_id)
      : clock_(SystemClock::Instance().NowUnixMicros()),
        generator_(std::move(GeneratorCore::Create(clock_, Options(worker_id))).value()),
        backend_(*generator_, stats_, "4.5.6", [this]() -> Status {
          if (healthy_.load()) return Status::Ok();
          return Status(StatusCode::kUnavailable, "lease lost (test)");
        }) {
    clock_.set_auto_advance(true);
  }
  Backend& backend() override { return backend_; }
  void StepClockBackSeconds(int seconds) override {
    saved_ = clock_.NowUnixMicros();
    clock_.Advance(-int64_t{seconds} * 1'000'000);
  }
  void RestoreClock() override { clock_.Set(saved_ + 1000); }
  void SetHealthy(bool healthy) override { healthy_.store(healthy); }
  uint32_t worker_id() const override { return generator_->worker_id(); }

 private:
  static GeneratorOptions Options(uint32_t worker_id) {
    GeneratorOptions o;
    o.worker_id = worker_id;
    return o;
  }
  std::atomic<bool> healthy_{true};
  ManualClock clock_;
  Stats stats_;
  std::unique_ptr<GeneratorCore> generator_;
  CoreBackend backend_;
  int64_t saved_ = 0;
};

}  // namespace

std::unique_ptr<TestBackend> MakeTestBackend(uint32_t worker_id) {
  return std::make_unique<CoreTestBackend>(worker_id);
}

}  // namespace katsubushi::grpc_api::testing
