// ReplyCoalescer: lets the replies a completion-queue thread writes in one
// batch leave a connection in a few TCP segments instead of one each.
//
// Why: gRPC C++ (1.51) writes each unary reply with its own sendmsg as soon
// as the handler finishes it, and TCP_NODELAY sends each at once. With many
// calls in flight on one connection, that is one segment, and on loopback one
// full trip through the receiver's TCP stack, per call, where go-katsubushi's
// HTTP/2 server flushes once per batch (README, Benchmarks, has the cost).
// Nagle's algorithm would coalesce too, but stalls a reply behind the
// client's delayed ACK.
//
// How: the first reply of a batch on a connection leaves at once (so a lone
// call waits for nothing); from the second on, the socket is corked
// (TCP_CORK) so gRPC's sendmsg calls only queue bytes, and it is uncorked,
// which sends what is queued in full segments, every kRepliesPerFlush replies
// and always at the end of the batch, before the thread blocks again. So no
// reply waits longer than its own batch, which is bounded by
// kMaxCompletionsPerBatch completions that are already waiting.
//
// Which socket: this front accepts its connections itself and hands each to
// gRPC by descriptor, and gRPC names such a peer "fd:<descriptor>"; a TLS
// connection is named by its address instead, and PeerSockets finds its
// descriptor (peer_sockets.h). A call
// holds its connection's transport, so the descriptor stays open while the
// call is alive; Flush() must run before finished calls are deleted. A peer
// named otherwise is simply not corked, and counted (TakeCounts(), exported
// to /metrics), so a gRPC that stops naming peers so shows.
//
// TLS: gRPC encrypts each reply into its own TLS record and writes it with
// its own sendmsg, as in plaintext, so corking the socket coalesces the
// records into full segments the same way.
//
// One per completion-queue thread; not thread-safe. Two threads corking one
// socket are harmless: whichever uncorks first sends what both queued.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace katsubushi::grpc_api {

class PeerSockets;

class ReplyCoalescer {
 public:
  // Completions one batch takes from the queue before it flushes and looks
  // again (each call has two: its request and its reply written).
  static constexpr int kMaxCompletionsPerBatch = 128;
  // Replies held on one socket before they are sent anyway: sending some
  // early lets the client work on them while the batch goes on, holding
  // too many leaves it idle (the README's Benchmarks has the sweep).
  static constexpr int kRepliesPerFlush = 24;

  // `peers`: finds the descriptors of TLS connections; null without TLS.
  explicit ReplyCoalescer(PeerSockets* peers = nullptr) : peers_(peers) {}
  ReplyCoalescer(const ReplyCoalescer&) = delete;
  ReplyCoalescer& operator=(const ReplyCoalescer&) = delete;
  ~ReplyCoalescer() { Flush(); }

  // Before a reply is written to the call whose gRPC peer name is `peer`.
  void BeforeReply(std::string_view peer);
  // Sends everything held: the end of a batch.
  void Flush();

  // The descriptor in a peer name "fd:<n>", or -1.
  static int DescriptorOf(std::string_view peer);

  // Replies held behind the cork, and replies whose peer was not named
  // "fd:<n>" (sent uncoalesced), since the last call; resets both.
  struct Counts {
    uint64_t corked = 0;
    uint64_t uncorkable = 0;
  };
  Counts TakeCounts() { return std::exchange(counts_, {}); }

 private:
  struct Socket {
    int fd;
    int held;  // replies queued behind the cork; 0: not corked
  };
  int Find(std::string_view peer);

  PeerSockets* const peers_;
  // The sockets that replied in this batch: a handful, so a vector.
  std::vector<Socket> sockets_;
  // The last TLS peer found in this batch: consecutive replies on one
  // connection look it up once (PeerSockets takes a lock).
  std::string last_peer_;
  int last_peer_fd_ = -1;
  Counts counts_;
};

}  // namespace katsubushi::grpc_api
