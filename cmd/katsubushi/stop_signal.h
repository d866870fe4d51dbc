// StopSignal: SIGTERM, SIGINT, SIGHUP and SIGQUIT as a std::stop_token, from
// the moment it is constructed. RunServer makes one before anything that can
// block (the state file's watermark wait, the Redis lease acquisition), so a
// stop during start-up is handled like one while serving: the token is set,
// whatever waits on it returns, what is held is released, and the process
// exits 0 instead of dying by the signal's default action.
//
// The handlers are Asio's (a self-pipe): they run on whichever thread the
// kernel picks and only wake this object's own thread, which logs the signal
// and requests the stop. Thread safety: token() and Wait() from any thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <stop_token>
#include <thread>

namespace katsubushi {

class StopSignal {
 public:
  StopSignal();
  // Restores the default actions and joins the thread.
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  std::stop_token token() const { return source_.get_token(); }
  // Blocks until a stop signal has arrived.
  void Wait() const;

 private:
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_;
  std::stop_source source_;
  std::thread thread_;
};

}  // namespace katsubushi
