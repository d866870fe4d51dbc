// Clock: where the generator gets the time from, injected so tests can drive it.
//
// SystemClock is the production clock. Like go-katsubushi it reads the wall
// clock once and then advances by the monotonic clock, so a wall-clock step
// while running neither stalls nor errors the service. Unlike the Go server it
// re-anchors forward when the wall clock runs ahead by more than a threshold
// (a forward NTP correction, or a host that was suspended and resynced). It
// never re-anchors backward, so the time it reports never decreases. Its
// monotonic part counts time the host spent suspended (CLOCK_BOOTTIME), so a
// deadline on this clock is never late: worker id leases rely on that.
//
// ManualClock moves only when a test says so.
//
// Thread safety: every Clock is safe to call from any number of threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace katsubushi {

class Clock {
 public:
  virtual ~Clock() = default;

  // Microseconds since the Unix epoch.
  virtual int64_t NowUnixMicros() = 0;

  // Blocks for a while, at most until the clock reads `unix_micros`. It may
  // return early (callers re-read the clock and call again); it must return
  // eventually even if the clock never gets there.
  virtual void WaitUntil(int64_t unix_micros) = 0;
};

class SystemClock final : public Clock {
 public:
  // A wall clock ahead of ours by more than this is taken as a correction.
  static constexpr std::chrono::milliseconds kForwardReanchorThreshold{100};
  // How often the wall clock is compared with ours; between checks only the
  // monotonic clock is read.
  static constexpr std::chrono::milliseconds kReanchorCheckInterval{10};

  SystemClock();

  int64_t NowUnixMicros() override;
  void WaitUntil(int64_t unix_micros) override;

  // A process-wide instance for code that has no reason to own one.
  static SystemClock& Instance();

 private:
  static int64_t MonotonicMicros();
  static int64_t WallMicros();

  // unix time = monotonic time + offset_. Only ever increased.
  std::atomic<int64_t> offset_micros_;
  std::atomic<int64_t> next_check_monotonic_micros_;
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t unix_micros) : now_(unix_micros) {}

  int64_t NowUnixMicros() override { return now_.load(std::memory_order_acquire); }

  // With auto-advance on, a wait jumps the clock to the time waited for, so a
  // single-threaded test never hangs on sequence overflow. With it off, the
  // wait yields and another thread is expected to move the clock.
  void WaitUntil(int64_t unix_micros) override;

  void Set(int64_t unix_micros) { now_.store(unix_micros, std::memory_order_release); }
  void SetMillis(int64_t unix_millis) { Set(unix_millis * 1000); }
  void Advance(int64_t micros) { now_.fetch_add(micros, std::memory_order_acq_rel); }
  void AdvanceMillis(int64_t millis) { Advance(millis * 1000); }
  void set_auto_advance(bool on) { auto_advance_.store(on, std::memory_order_relaxed); }
  uint64_t wait_count() const { return waits_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
  std::atomic<bool> auto_advance_{true};
  std::atomic<uint64_t> waits_{0};
};

}  // namespace katsubushi
