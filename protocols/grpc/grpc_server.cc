// Includes the generated service headers: never the core's generator.h or
// stats.h (see backend.h).
#include "grpc/grpc_server.h"

#include <absl/synchronization/mutex.h>
#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc/call_queue.h"
#include "grpc/channel_acceptor.h"
#include "grpc/goaway.h"
#include "grpc/grpc_log.h"
#include "grpc/health_service.h"
#include "grpc/peer_sockets.h"
#include "grpc/tls_credentials.h"
#include "katsubushi.grpc.pb.h"

namespace katsubushi::grpc_api {
namespace {

// How often Drain() looks whether the calls in flight are done. Unary calls
// here finish in microseconds; this bounds how long after the last one the
// idle channels are closed.
constexpr std::chrono::milliseconds kDrainPollInterval{2};

// How long the stop waits, after the GOAWAYs, for the clients to leave
// before gRPC's shutdown (goaway.h says why it waits). A busy channel closes
// as soon as its client has acknowledged the GOAWAY (a ping's round trip) and
// its calls are answered; a quiet one is closed by the drain after
// kQuietChannel. The wait runs to this bound only for a channel that keeps
// talking without acknowledging the GOAWAY; at the shutdown, what such a
// channel sends next is cancelled.
constexpr std::chrono::milliseconds kGoawayGrace{1000};

// A channel that has received nothing for this long (counted from the
// GOAWAY at the earliest), while the server is answering no request, is
// closed by the drain instead of waited for: its client may not read again
// until its next call (grpcio's idle channels do not), so it would never
// acknowledge the GOAWAY. Long enough for a ping's round trip and for a
// request that has arrived to be taken. A call its client starts as it is
// closed ends UNAVAILABLE without reaching the server, as on any idle
// connection a server closes.
constexpr std::chrono::milliseconds kQuietChannel{50};

}  // namespace

struct GrpcServer::Impl {
  Impl(Backend& b, GrpcOptions o)
      : backend(b), options(std::move(o)), health(katsubushi::Generator::service_full_name()) {}

  // Keeps grpc.health.v1 in step with Backend::Health() (Start() sets the
  // first value, before any client can ask).
  void PollHealth() {
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, GrpcOptions::kHealthPollInterval, [this] { return stopping; })) {
      health.SetServing(backend.Health().ok());
    }
  }

  Backend& backend;
  const GrpcOptions options;
  CallCounter calls;
  AsyncServices services;
  HealthService health;
  // TLS only: the credentials gRPC's handshakes use, the acceptor that hands
  // it connections with them, and the descriptors of those connections.
  std::shared_ptr<grpc::ServerCredentials> tls_credentials;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> tls_acceptor;
  std::unique_ptr<PeerSockets> peers;
  ChannelAcceptor acceptor;
  // Before `server`, so destroyed after it, as gRPC requires.
  std::vector<std::unique_ptr<CallQueue>> queues;
  std::unique_ptr<grpc::Server> server;
  std::thread health_thread;
  std::thread shutdown_thread;  // runs grpc::Server::Shutdown, which blocks
  bool accepting = false;       // StopAccepting() not called yet
  bool goaways_sent = false;    // SendGoaways() did; Drain() waits for the channels
  std::chrono::steady_clock::time_point stopped_accepting_at;
  // Set when Shutdown() has returned. Release/acquire is more than the flag
  // needs: Drain() only uses it to stop polling, and joins the thread after.
  std::atomic<bool> shut_down{false};
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool started = false;
};

GrpcServer::GrpcServer(Backend& backend, GrpcOptions options)
    : impl_(std::make_unique<Impl>(backend, std::move(options))) {}

GrpcServer::~GrpcServer() {
  Drain(std::chrono::steady_clock::now());
  if (impl_->options.tls) DetachGrpcLog(impl_->backend);
}

std::error_code GrpcServer::Start() {
  Impl& im = *impl_;
  if (im.started) return std::make_error_code(std::errc::operation_in_progress);
  if (std::error_code ec = im.acceptor.Listen(im.options.address, im.options.port)) return ec;
  // Process-wide switches that must be set before the builder runs. The
  // health service is ours (health_service.h says why).
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Debian's Abseil checks every gRPC mutex acquisition for lock-order
  // cycles, a debugging aid (off when Abseil is built with NDEBUG) that costs
  // every call. Process-wide; gRPC is the only user of Abseil here.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::ServerBuilder builder;
  // Every request here is a few bytes; gRPC's default would buffer 4 MiB.
  builder.SetMaxReceiveMessageSize(GrpcOptions::kMaxRequestBytes);
  builder.RegisterService(&im.services.generator);
  builder.RegisterService(&im.services.stats);
  builder.RegisterService(&im.health);
  const size_t threads = im.options.threads > 0
                             ? im.options.threads
                             : std::max<size_t>(1, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  for (size_t i = 0; i < threads; ++i) queues.push_back(builder.AddCompletionQueue());
  if (im.options.tls) {
    AttachGrpcLog(im.backend);  // counts gRPC's handshake failures (grpc_log.h)
    std::string error;
    im.tls_credentials = MakeTlsCredentials(im.backend, &error);
    if (!im.tls_credentials) return std::make_error_code(std::errc::invalid_argument);
    im.tls_acceptor = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, im.tls_credentials);
    im.peers = std::make_unique<PeerSockets>(im.backend);
    im.health.SetPeers(im.peers.get());
    const int64_t timeout_ms = std::clamp<int64_t>(im.options.handshake_timeout.count(), 1, INT_MAX);
    builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, static_cast<int>(timeout_ms));
    im.acceptor.SetTls({im.tls_acceptor.get(), im.peers.get(), &im.backend,
                        std::chrono::milliseconds(timeout_ms)});
  }
  im.server = builder.BuildAndStart();
  if (!im.server) return std::make_error_code(std::errc::not_enough_memory);
  for (auto& queue : queues) {
    im.queues.push_back(std::make_unique<CallQueue>(im.services, im.backend, im.calls, std::move(queue),
                                                    im.peers.get()));
    im.queues.back()->Start();
  }
  im.acceptor.Start(*im.server);
  bound_port_ = im.acceptor.port();
  im.stopping = false;
  im.health.SetServing(im.backend.Health().ok());
  im.health_thread = std::thread([&im] { im.PollHealth(); });
  im.accepting = true;
  im.started = true;
  return {};
}

void GrpcServer::StopAccepting() {
  Impl& im = *impl_;
  if (!im.started || !im.accepting) return;
  im.accepting = false;
  {
    std::lock_guard lock(im.mutex);
    im.stopping = true;
  }
  im.wake.notify_all();
  im.health_thread.join();
  // Health Watch streams get NOT_SERVING and end; Check answers NOT_SERVING
  // while in-flight calls drain.
  im.health.Shutdown();
  // No new connection from here on, so the GOAWAYs and the shutdown below
  // see them all.
  im.acceptor.Stop();
  // Clients are told to leave while calls are still matched (goaway.h);
  // Drain() begins gRPC's shutdown once they have left.
  im.goaways_sent = SendGoaways(*im.server);
  im.stopped_accepting_at = std::chrono::steady_clock::now();
}

void GrpcServer::CloseIdle() {
  // Nothing to do at once: the GOAWAY has told every client to leave; an idle
  // channel closes when its client acknowledges it, or when Drain() finds it
  // quiet.
}

bool GrpcServer::Drain(net::Deadline deadline) {
  Impl& im = *impl_;
  if (!im.started) return true;
  StopAccepting();
  im.started = false;
  // Until the clients have left, the server must go on matching the calls
  // they sent before they had the GOAWAY: gRPC's shutdown would cancel them
  // (goaway.h).
  if (im.goaways_sent) {
    const auto until = std::min(deadline, im.stopped_accepting_at + kGoawayGrace);
    while (!im.acceptor.AwaitChannelsClosed(
        std::min(until, std::chrono::steady_clock::now() + kDrainPollInterval))) {
      if (std::chrono::steady_clock::now() >= until) break;
      // Quiet since the GOAWAY at least, so that a client that was merely
      // between calls when it came has had the time to come back and read it.
      // Relaxed: a hint, not a handshake. A request taken just after this
      // load arrived on a channel that cannot have been quiet.
      if (std::chrono::steady_clock::now() - im.stopped_accepting_at >= kQuietChannel &&
          im.calls.answering.load(std::memory_order_relaxed) == 0) {
        im.acceptor.CloseQuietChannels(kQuietChannel);
      }
    }
  }
  // No deadline here: the loop below decides when to cut off what is left.
  im.shutdown_thread = std::thread([&im] {
    im.server->Shutdown();
    im.shut_down.store(true, std::memory_order_release);
  });
  // While unary calls are alive (call_queue.h: waiting ones end when the
  // shutdown has begun, answered ones when their reply is written), or
  // health Watch streams are sending their last NOT_SERVING, wait for them
  // (up to the deadline). When none is, end every call and channel left:
  // idle channels and reflection streams. Repeated, because a channel that
  // connected just before the listener closed may come after the first
  // sweep; cancelling when nothing is in flight cuts off nothing that was
  // asked.
  bool clean = true;
  while (!im.shut_down.load(std::memory_order_acquire)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      clean = false;
      grpc_server_cancel_all_calls(im.server->c_server());
      break;
    }
    if (im.calls.alive.load() == 0 && im.health.open_watches() == 0) {
      grpc_server_cancel_all_calls(im.server->c_server());
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(kDrainPollInterval, deadline - now));
  }
  im.shutdown_thread.join();
  // gRPC's order: the server's shutdown, then its queues', then the server.
  for (auto& queue : im.queues) queue->Shutdown();
  im.server->Wait();
  im.server.reset();
  im.queues.clear();
  return clean;
}

}  // namespace katsubushi::grpc_api
