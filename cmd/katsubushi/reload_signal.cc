#include "reload_signal.h"

#include <csignal>

namespace katsubushi {

ReloadSignal::ReloadSignal(std::function<void()> reload)
    : reload_(std::move(reload)), signals_(io_, SIGUSR1) {
  Wait();
  thread_ = std::thread([this] { io_.run(); });
}

ReloadSignal::~ReloadSignal() {
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  signals_.clear(ignored);
  thread_.join();
}

void ReloadSignal::Wait() {
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;  // cancelled: the process is ending
    reload_();
    Wait();
  });
}

}  // namespace katsubushi
