#include "grpc/goaway.h"

#include <grpcpp/alarm.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#ifdef KATSUBUSHI_GRPC_SEND_GOAWAYS
// gRPC core's server, of which only this exported member is used. A
// grpc_server* is the grpc_core::Server* itself (core's CppImplOf::FromC is a
// reinterpret_cast), and the member is not virtual, so the call needs no
// layout. Default visibility: the symbol is libgrpc's, not the module's.
namespace grpc_core {
class __attribute__((visibility("default"))) Server {
 public:
  void SendGoaways();
};
}  // namespace grpc_core
#endif

namespace katsubushi::grpc_api {

bool SendGoaways([[maybe_unused]] grpc::Server& server) {
#ifdef KATSUBUSHI_GRPC_SEND_GOAWAYS
  // Core's internals must run inside one of its execution contexts, which
  // only its own threads and its public entry points set up. A callback
  // alarm's function runs on gRPC's executor, inside one: the hop is for that.
  // Shared with the callback, which must not depend on this frame's life.
  struct Hop {
    std::mutex mutex;
    std::condition_variable done;
    bool ran = false;
    bool sent = false;
  };
  auto hop = std::make_shared<Hop>();
  grpc_server* const c_server = server.c_server();
  grpc::Alarm alarm;
  // Fires at once: its deadline has passed. Its function also runs, with
  // false, if the alarm is cancelled; then no GOAWAY is sent.
  alarm.Set(std::chrono::system_clock::now(), [hop, c_server](bool fired) {
    if (fired) reinterpret_cast<grpc_core::Server*>(c_server)->SendGoaways();
    std::lock_guard lock(hop->mutex);
    hop->sent = fired;
    hop->ran = true;
    hop->done.notify_all();
  });
  std::unique_lock lock(hop->mutex);
  hop->done.wait(lock, [&] { return hop->ran; });
  return hop->sent;
#else
  return false;
#endif
}

}  // namespace katsubushi::grpc_api
