// StateFileKeeper: restart safety for a static worker id (-state-file).
//
// The file holds a promise: "this worker id issues no ID at or after T". The
// keeper rewrites it every second with T = now + kHorizon and only then lets
// the generator issue up to T (its lease deadline), so a crash at any moment
// leaves a file whose T is past every ID issued. At start-up the generator
// waits until the clock passes the T it finds, so IDs of a previous life are
// not re-issued even if the wall clock was stepped back meanwhile. A clean
// stop writes the exact last issued ms, so a normal restart does not wait.
//
// If the file cannot be written the deadline runs out and the generator stops
// issuing (health turns 503) until a write succeeds.
//
// Thread safety: Start() and Stop() from one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "katsubushi/clock.h"
#include "katsubushi/generator_core.h"
#include "katsubushi/lease/lease_log.h"
#include "katsubushi/status.h"

namespace katsubushi::lease {

struct StateFileOptions {
  static constexpr std::chrono::milliseconds kHorizon{3000};
  static constexpr std::chrono::milliseconds kInterval{1000};

  std::string path;
  uint32_t worker_id = 0;
  // How long start-up waits for the clock to pass the file's watermark.
  std::chrono::milliseconds max_wait{10'000};
  // The wait is cut into slices this long to look at the stop token.
  static constexpr std::chrono::milliseconds kStopCheckInterval{20};
  LogFunction log;
};

// The file's content: "katsubushi-state 1 <worker id> <unix ms>\n".
std::string FormatStateFile(uint32_t worker_id, int64_t unix_millis);
// The Unix ms of a state file's content; an error when it is not one.
Result<int64_t> ParseStateFile(std::string_view content);

class StateFileKeeper {
 public:
  // The generator must have been created suspended.
  StateFileKeeper(GeneratorCore& generator, Clock& clock, StateFileOptions options);
  ~StateFileKeeper();
  StateFileKeeper(const StateFileKeeper&) = delete;
  StateFileKeeper& operator=(const StateFileKeeper&) = delete;

  // Reads the file, waits out its watermark, writes the first promise and
  // resumes the generator; then keeps the promise ahead on a thread. On error
  // (unreadable or unwritable file) nothing is started; `*error` says why.
  // A stop requested through `stop` ends the watermark wait at once: Start()
  // then fails without writing anything (the file keeps its promise).
  bool Start(std::string* error, std::stop_token stop = {});
  // Stops issuing and records the exact last issued ms.
  void Stop();

 private:
  bool Write(int64_t unix_millis, std::string* error);
  void Run();
  void Log(LogLevel level, const std::string& message) const;

  GeneratorCore& generator_;
  Clock& clock_;
  const StateFileOptions options_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool write_failing_ = false;
  std::thread thread_;
};

}  // namespace katsubushi::lease
