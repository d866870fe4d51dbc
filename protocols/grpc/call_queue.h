// CallQueue: one completion queue of the async API, and the thread that
// serves katsubushi.Generator (Fetch, FetchMulti) and katsubushi.Stats (Get)
// from it.
//
// Why the async completion-queue API: the thread that waits on the queue is
// also the one that polls the connections, so a call is read, answered and
// written by one thread with no hand-off. The callback API ran handlers on
// gRPC's callback threads, a thread hop and a wake-up per call (README,
// Benchmarks, has the figures).
//
// Each queue keeps kPendingCallsPerMethod calls of each method waiting for a
// request, so that the requests of one read find a call each instead of
// waiting in gRPC's own queue of unmatched requests. The thread takes the
// completions that are waiting in batches and writes their replies
// through a ReplyCoalescer (reply_coalescer.h says why).
//
// Life: Start() after the server is built; after grpc::Server::Shutdown()
// has returned, Shutdown() ends the queue and joins the thread (gRPC's
// order). The services, backend and counter must outlive it.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "grpc/backend.h"
#include "katsubushi.grpc.pb.h"

namespace katsubushi::grpc_api {

// The calls of every queue, counted for the stop.
struct CallCounter {
  // Alive: waiting for a request, or answering one. For the drain: a request
  // gRPC has matched to a waiting call is in flight before this queue's
  // thread takes it, so counting from the take would miss it. Counting whole
  // lives instead, the count reaches 0 only once the server's shutdown has
  // ended every waiting call (no call can be matched any more) and every
  // request received has been answered; a call that proceeds creates its
  // successor before it is deleted, so 0 is final.
  std::atomic<int> alive{0};
  // Answering: taken by the queue's thread and not yet written. Before the
  // shutdown, when waiting calls keep `alive` above 0, this tells the drain
  // that no request taken is left unanswered (grpc_server.cc).
  std::atomic<int> answering{0};
};

struct AsyncServices {
  katsubushi::Generator::AsyncService generator;
  katsubushi::Stats::AsyncService stats;
};

class PeerSockets;

class CallQueue {
 public:
  static constexpr int kPendingCallsPerMethod = 64;

  // `peers`: where the descriptors of TLS connections are found (null
  // without TLS); it must outlive the queue.
  CallQueue(AsyncServices& services, Backend& backend, CallCounter& calls,
            std::unique_ptr<grpc::ServerCompletionQueue> queue, PeerSockets* peers = nullptr);
  ~CallQueue();
  CallQueue(const CallQueue&) = delete;
  CallQueue& operator=(const CallQueue&) = delete;

  void Start();
  void Shutdown();

 private:
  void Serve();

  AsyncServices& services_;
  Backend& backend_;
  CallCounter& calls_;
  PeerSockets* const peers_;
  std::unique_ptr<grpc::ServerCompletionQueue> queue_;
  std::thread thread_;
};

}  // namespace katsubushi::grpc_api
