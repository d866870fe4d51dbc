// ServiceNotifier: what the server tells systemd (Type=notify) over the
// sd_notify(3) protocol, from one thread of its own so that the messages
// keep their order:
//
//   STATUS=...   whenever what the server is doing changes: waiting for a
//                worker id (with the lease keeper's last word: Redis
//                unreachable, no free id, ...), waiting out a watermark,
//                refusing IDs (and why), issuing as worker id N
//   READY=1      once, when every listener is up (ListenersUp()) and the
//                generator can issue (a worker id is held, its watermark
//                passed); with MAINPID= when systemd started a wrapper
//   WATCHDOG=1   every half of $WATCHDOG_USEC while the generator can issue,
//                and never while it cannot: an instance that cannot hand out
//                IDs for a whole WatchdogSec is restarted by systemd
//   STOPPING=1   as soon as `stop` is requested (SIGTERM), before the drain;
//                nothing is sent after it
//
// Without $NOTIFY_SOCKET it does nothing and starts no thread. A datagram
// that cannot be sent is logged (once) and never stops the server.
//
// Thread safety: ListenersUp() and LeaseLog()'s function from any thread.
// `generator` must outlive the notifier, and the notifier every function
// LeaseLog() returned.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "katsubushi/generator_core.h"
#include "katsubushi/lease/lease_log.h"
#include "systemd/notify_socket.h"

namespace katsubushi::systemd {

// How often the generator's state is looked at for STATUS= and READY=1.
inline constexpr std::chrono::milliseconds kStatePollInterval{100};

// The variables of notify_protocol.h, read from the process environment.
struct NotifyEnvironment {
  std::string notify_socket;
  std::string watchdog_usec;
  std::string watchdog_pid;
  std::string systemd_exec_pid;
  static NotifyEnvironment FromProcess();
};

class ServiceNotifier {
 public:
  ServiceNotifier(const GeneratorCore& generator, std::stop_token stop,
                  NotifyEnvironment environment = NotifyEnvironment::FromProcess());
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // Every listener accepts: READY=1 as soon as IDs can be issued.
  void ListenersUp();

  // `log` plus the lease keeper's latest message kept for STATUS= (why no
  // worker id is held yet, ...).
  lease::LogFunction LeaseLog(lease::LogFunction log);

 private:
  void Run();
  // Looks at the generator and sends what changed; returns when to look again.
  std::chrono::steady_clock::time_point Step(std::chrono::steady_clock::time_point now);
  void Send(const std::string& message);

  const GeneratorCore& generator_;
  const std::stop_token stop_;
  std::unique_ptr<NotifySocket> socket_;  // null: not run by systemd
  std::optional<std::chrono::microseconds> watchdog_interval_;
  bool send_main_pid_ = false;

  std::mutex mu_;
  std::condition_variable_any wake_;
  bool listeners_up_ = false;  // guarded by mu_
  bool exiting_ = false;       // guarded by mu_
  std::string lease_message_;  // guarded by mu_

  // Owned by the thread.
  bool ready_sent_ = false;
  bool could_issue_ = false;
  std::string last_status_;
  std::chrono::steady_clock::time_point next_watchdog_{};
  bool send_failed_ = false;

  std::thread thread_;
};

}  // namespace katsubushi::systemd
