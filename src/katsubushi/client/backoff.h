// ServerBackoff: how long a server that just failed is passed over.
//
// After a server fails a call (all of its attempts), it is skipped for
// `initial`; each further consecutive failure doubles that, up to `max`. One
// success clears it. A skipped server is not dead to the Client: it is tried
// after every server that is not skipped has failed (see client.h).
//
// Time comes from a katsubushi::Clock so that tests drive it.
//
// Thread safety: every method may be called from any thread. The two fields
// are separate relaxed atomics: a reader may see a failure count and a skip
// time from two different updates, which at worst skips a server a little
// longer or shorter than planned; no ID depends on it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "katsubushi/clock.h"

namespace katsubushi::client {

class ServerBackoff {
 public:
  ServerBackoff(Clock& clock, std::chrono::milliseconds initial, std::chrono::milliseconds max)
      : clock_(clock), initial_micros_(initial.count() * 1000), max_micros_(max.count() * 1000) {}

  // Whether the server should be passed over now.
  bool Skipped() const;
  void RecordFailure();
  void RecordSuccess();

  // The skip interval the next failure will start (for tests and logs).
  int64_t NextIntervalMicros() const;

 private:
  Clock& clock_;
  const int64_t initial_micros_;
  const int64_t max_micros_;
  std::atomic<uint32_t> failures_{0};
  std::atomic<int64_t> skip_until_micros_{0};
};

}  // namespace katsubushi::client
