// Front: what the process needs from every front (memcached, HTTP, gRPC) to
// start it and to stop it the one way: stop accepting everywhere at once,
// close idle connections at once, then let in-flight requests finish against
// one deadline shared by every front (STYLE.md, "One drain, one deadline").
//
// Header-only and free of Asio and gRPC, so the gRPC module (which links
// neither the core nor Boost) implements the same interface.
//
// Thread safety: the stop methods are called from one thread (the one that
// handles the stop), in the order StopAccepting, CloseIdle, Drain; each
// returns at once except Drain. Start() before any of them.
#pragma once

#include <chrono>
#include <span>
#include <system_error>

namespace katsubushi::net {

using Deadline = std::chrono::steady_clock::time_point;

class Front {
 public:
  virtual ~Front() = default;

  // Binds every listener and starts serving.
  virtual std::error_code Start() = 0;
  // Closes the listeners: no new connection or call from now on. Returns at once.
  virtual void StopAccepting() = 0;
  // Closes every connection with no request in flight (and, from now on,
  // each in-flight one as soon as its reply is written). Returns at once.
  virtual void CloseIdle() = 0;
  // Waits until every connection is gone, or until `deadline`, then ends
  // whatever is left. Returns true when nothing had to be cut off.
  virtual bool Drain(Deadline deadline) = 0;

  // All three for this front alone (tests, and programs with one front).
  bool Stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));
};

// Stops every front with one deadline `timeout` from now: all stop accepting,
// then all close their idle connections, then each is drained to the same
// deadline (they drain concurrently on their own threads; waiting on them in
// turn costs nothing). Returns true when no front had to cut anything off.
inline bool StopAll(std::span<Front* const> fronts, std::chrono::milliseconds timeout) {
  const Deadline deadline = std::chrono::steady_clock::now() + timeout;
  for (Front* f : fronts) f->StopAccepting();
  for (Front* f : fronts) f->CloseIdle();
  bool clean = true;
  for (Front* f : fronts) clean = f->Drain(deadline) && clean;
  return clean;
}

inline bool Front::Stop(std::chrono::milliseconds timeout) {
  Front* const self[] = {this};
  return StopAll(self, timeout);
}

}  // namespace katsubushi::net
