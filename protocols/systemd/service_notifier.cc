#include "systemd/service_notifier.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include <spdlog/spdlog.h>

namespace katsubushi::systemd {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

NotifyEnvironment NotifyEnvironment::FromProcess() {
  return {Env("NOTIFY_SOCKET"), Env("WATCHDOG_USEC"), Env("WATCHDOG_PID"), Env("SYSTEMD_EXEC_PID")};
}

ServiceNotifier::ServiceNotifier(const GeneratorCore& generator, std::stop_token stop,
                                 NotifyEnvironment environment)
    : generator_(generator), stop_(std::move(stop)) {
  ParsedNotifySocket parsed = ParseNotifySocket(environment.notify_socket);
  if (!parsed.address) {
    if (!parsed.error.empty()) spdlog::warn("systemd notifications off: {}", parsed.error);
    return;
  }
  socket_ = std::make_unique<NotifySocket>(std::move(*parsed.address));
  const pid_t self = ::getpid();
  watchdog_interval_ = WatchdogPingInterval(environment.watchdog_usec, environment.watchdog_pid, self);
  send_main_pid_ = NeedsMainPid(environment.systemd_exec_pid, self);
  thread_ = std::thread([this] { Run(); });
}

ServiceNotifier::~ServiceNotifier() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    exiting_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ServiceNotifier::ListenersUp() {
  {
    std::lock_guard lock(mu_);
    listeners_up_ = true;
  }
  wake_.notify_all();
}

lease::LogFunction ServiceNotifier::LeaseLog(lease::LogFunction log) {
  if (!socket_) return log;
  return [this, log = std::move(log)](lease::LogLevel level, std::string_view message) {
    if (log) log(level, message);
    if (level == lease::LogLevel::kDebug) return;
    std::lock_guard lock(mu_);
    lease_message_.assign(message);
  };
}

void ServiceNotifier::Run() {
  std::unique_lock lock(mu_);
  bool seen_listeners_up = false;
  auto next = std::chrono::steady_clock::now();
  while (true) {
    wake_.wait_until(lock, stop_, next,
                     [&] { return exiting_ || listeners_up_ != seen_listeners_up; });
    if (stop_.stop_requested()) {
      lock.unlock();
      Send(std::string(kStopping) + "\n" +
           StatusLine("stopping: draining requests, then releasing the worker id"));
      return;
    }
    if (exiting_) return;
    seen_listeners_up = listeners_up_;
    lock.unlock();
    next = Step(std::chrono::steady_clock::now());
    lock.lock();
  }
}

std::chrono::steady_clock::time_point ServiceNotifier::Step(
    std::chrono::steady_clock::time_point now) {
  const Status can_issue = generator_.CanIssue();
  bool listeners_up;
  std::string lease_message;
  {
    std::lock_guard lock(mu_);
    listeners_up = listeners_up_;
    // What the keeper said before IDs could be issued is history now.
    if (can_issue.ok() && !could_issue_) lease_message_.clear();
    lease_message = lease_message_;
  }

  std::string status;
  const std::string worker = "worker id " + std::to_string(generator_.worker_id());
  if (!can_issue.ok()) {
    status = "not issuing IDs: " + std::string(can_issue.message());
    if (!lease_message.empty()) status += "; lease: " + lease_message;
  } else if (!listeners_up) {
    status = worker + " held; starting listeners";
  } else {
    status = "issuing IDs as " + worker;
  }

  std::string message;
  auto add = [&message](std::string_view line) {
    if (!message.empty()) message += '\n';
    message += line;
  };
  if (can_issue.ok() && listeners_up && !ready_sent_) {
    add(kReady);
    if (send_main_pid_) add(MainPidLine(::getpid()));
    ready_sent_ = true;
  }
  if (status != last_status_) {
    add(StatusLine(status));
    last_status_ = std::move(status);
  }
  auto next = now + kStatePollInterval;
  if (can_issue.ok() && watchdog_interval_) {
    if (!could_issue_) next_watchdog_ = now;  // able again: say so at once
    if (now >= next_watchdog_) {
      add(kWatchdog);
      next_watchdog_ = now + *watchdog_interval_;
    }
    next = std::min(next, next_watchdog_);
  }
  could_issue_ = can_issue.ok();
  if (!message.empty()) Send(message);
  return next;
}

void ServiceNotifier::Send(const std::string& message) {
  std::string error;
  if (socket_->Send(message, &error) || send_failed_) return;
  send_failed_ = true;  // once: a manager that went away would flood the log
  spdlog::warn("cannot notify systemd ({}): {}", message.substr(0, message.find('\n')), error);
}

}  // namespace katsubushi::systemd
