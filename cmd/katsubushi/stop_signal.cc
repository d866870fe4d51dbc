#include "stop_signal.h"

#include <csignal>
#include <condition_variable>
#include <mutex>

#include <spdlog/spdlog.h>

namespace katsubushi {

StopSignal::StopSignal() : signals_(io_, SIGINT, SIGTERM, SIGHUP) {
  signals_.add(SIGQUIT);
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;  // cancelled: the process is ending without a signal
    spdlog::info("Got signal {}", signal);
    source_.request_stop();
  });
  thread_ = std::thread([this] { io_.run(); });
}

StopSignal::~StopSignal() {
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  signals_.clear(ignored);
  thread_.join();
}

void StopSignal::Wait() const {
  std::mutex mu;
  std::condition_variable_any never;
  std::unique_lock lock(mu);
  never.wait(lock, token(), [] { return false; });
}

}  // namespace katsubushi
