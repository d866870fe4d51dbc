// ReloadSignal: SIGUSR1 as "load the TLS certificate files again now", for
// an operator (or a certificate manager's hook) that does not want to wait
// for the next poll. Installed only while TLS is configured: without it
// SIGUSR1 keeps its default action, as in go-katsubushi. SIGHUP keeps its
// meaning (a graceful stop; see StopSignal).
//
// The handler is Asio's (a self-pipe); `reload` runs on this object's own
// thread. Thread safety: construct and destroy on one thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <thread>

namespace katsubushi {

class ReloadSignal {
 public:
  explicit ReloadSignal(std::function<void()> reload);
  // Restores SIGUSR1's default action and joins the thread.
  ~ReloadSignal();
  ReloadSignal(const ReloadSignal&) = delete;
  ReloadSignal& operator=(const ReloadSignal&) = delete;

 private:
  void Wait();

  const std::function<void()> reload_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_;
  std::thread thread_;
};

}  // namespace katsubushi
