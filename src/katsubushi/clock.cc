#include "katsubushi/clock.h"

#include <ctime>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace katsubushi {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;

// Waits shorter than this are spun and yielded; longer ones sleep, because a
// sleep overshoots by tens of microseconds and would waste the next tick.
constexpr int64_t kSleepAboveMicros = 1500;
constexpr int64_t kSleepMarginMicros = 1000;
constexpr int kSpinsPerWait = 32;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

int64_t SystemClock::MonotonicMicros() {
#if defined(CLOCK_BOOTTIME)
  // CLOCK_BOOTTIME, not CLOCK_MONOTONIC: it keeps counting while the host is
  // suspended. Lease deadlines live on this timeline, and a deadline must
  // never be reached later than the wall-clock time it stands for.
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
#else
  return duration_cast<microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
#endif
}

int64_t SystemClock::WallMicros() {
  return duration_cast<microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

SystemClock::SystemClock()
    : offset_micros_(WallMicros() - MonotonicMicros()),
      next_check_monotonic_micros_(MonotonicMicros()) {}

int64_t SystemClock::NowUnixMicros() {
  const int64_t mono = MonotonicMicros();
  // Relaxed throughout: offset_micros_ only grows, so per-thread coherence
  // already makes each thread's readings non-decreasing. Two threads may
  // briefly disagree across a re-anchor; the generator orders IDs with its own
  // CAS and never trusts the clock to be consistent across threads.
  if (mono >= next_check_monotonic_micros_.load(std::memory_order_relaxed)) {
    next_check_monotonic_micros_.store(
        mono + duration_cast<microseconds>(kReanchorCheckInterval).count(),
        std::memory_order_relaxed);
    const int64_t desired = WallMicros() - mono;
    int64_t offset = offset_micros_.load(std::memory_order_relaxed);
    if (desired - offset > duration_cast<microseconds>(kForwardReanchorThreshold).count()) {
      while (offset < desired &&
             !offset_micros_.compare_exchange_weak(offset, desired, std::memory_order_relaxed)) {
      }
    }
  }
  return mono + offset_micros_.load(std::memory_order_relaxed);
}

void SystemClock::WaitUntil(int64_t unix_micros) {
  const int64_t remaining = unix_micros - NowUnixMicros();
  if (remaining <= 0) return;
  if (remaining > kSleepAboveMicros) {
    std::this_thread::sleep_for(microseconds(remaining - kSleepMarginMicros));
    return;
  }
  for (int i = 0; i < kSpinsPerWait; ++i) CpuRelax();
  std::this_thread::yield();
}

SystemClock& SystemClock::Instance() {
  static SystemClock clock;
  return clock;
}

void ManualClock::WaitUntil(int64_t unix_micros) {
  waits_.fetch_add(1, std::memory_order_relaxed);
  if (!auto_advance_.load(std::memory_order_relaxed)) {
    std::this_thread::yield();
    return;
  }
  int64_t now = now_.load(std::memory_order_acquire);
  while (now < unix_micros &&
         !now_.compare_exchange_weak(now, unix_micros, std::memory_order_acq_rel)) {
  }
}

}  // namespace katsubushi
