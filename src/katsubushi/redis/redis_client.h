// RedisClient: the one way the lease code talks to Redis. Blocking, one
// command at a time, every call bounded by timeouts; it finds the node to
// talk to (topology.h: a host, a cluster's slot owner, the primary named by
// Sentinel), speaks TLS (rediss://, tls_client.h), and classifies error
// replies (error_reply.h):
//
//   * a transport error, or an error reply saying the node cannot take
//     writes (READONLY, LOADING, MASTERDOWN, ...: a failover), drops the
//     connection, and the call fails; the next call finds the node again.
//     The first such reply of a failover is logged plainly, and each drop is
//     counted (reconnects);
//   * a MOVED reply (cluster) relearns the slot map and retries there; an
//     ASK sends the one command to the importing node;
//   * each new connection to a data node reads INFO memory: where the node
//     may evict keys that carry a TTL (ours do), it warns, at start and at
//     every reconnect, and the eviction_possible counter says so;
//   * RunWrite() makes a write count only once the replicas have it (below).
//
// Replica acknowledgement (ReplicaPolicy). Redis replicates asynchronously:
// a write the primary acknowledged can be lost when a replica is promoted.
// RunWrite() sends the write and ROLE together, then WAIT for every replica
// the primary lists as connected (and at least min_replicas) with `timeout`.
// Only when all of them acknowledged is the write kDone; otherwise
// kNotReplicated, and the caller must not rely on it. This is not consensus:
// a replica that was disconnected when the write was made (and so not
// waited for) could still be promoted by an operator or by Sentinel if it
// reconnects before the failover; min_replicas turns that into "no write
// counts with fewer than N replicas connected".
//
// Not thread-safe: one owner at a time; counters() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "katsubushi/lease/lease_log.h"
#include "katsubushi/redis/connection.h"
#include "katsubushi/redis/redis_url.h"
#include "katsubushi/redis/reply.h"
#include "katsubushi/tls/tls_client.h"

namespace katsubushi::redis {

class Topology;

struct ReplicaPolicy {
  static constexpr std::chrono::milliseconds kDefaultTimeout{500};
  // Writes count only with at least this many replicas acknowledging.
  uint32_t min_replicas = 0;
  // How long a write waits for them (WAIT's timeout); 0: it does not wait,
  // and a write counts once the primary has it (go-katsubushi's behaviour).
  std::chrono::milliseconds timeout = kDefaultTimeout;
};

struct RedisClientOptions {
  RedisUrl url;
  tls::TlsClientOptions tls;  // used with a TLS scheme (rediss://, ...)
  RedisTimeouts timeouts;
  ReplicaPolicy replicas;
  lease::LogFunction log;
};

struct RedisCounters {
  uint64_t reconnects = 0;            // connections dropped after an error or a failover
  uint64_t replica_ack_failures = 0;  // RunWrite()s the replicas did not all acknowledge
  bool eviction_possible = false;     // the last data node's policy can evict our keys
};

class RedisClient {
 public:
  // Redirects followed for one command before giving up (a resharding).
  static constexpr int kMaxRedirects = 5;

  explicit RedisClient(RedisClientOptions options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command on the node that owns `key` (the primary outside a
  // cluster; any node for an empty key). False when no usable reply came
  // (see above; error() says why). An error reply that is the command's own
  // is a true return with a kError reply.
  bool Run(std::string_view key, Args args, RedisReply* reply);

  enum class Write { kDone, kNotReplicated, kNoAnswer };
  // Run() for a write that must survive a failover: kDone only once the
  // replicas acknowledged it as the ReplicaPolicy says. *reply is the
  // write's reply whenever it came (kDone and kNotReplicated).
  Write RunWrite(std::string_view key, Args args, RedisReply* reply);

  // SUBSCRIBEs to `channel` on a connection of its own and calls `on_message`
  // with each message payload until `duration` has passed or `keep_going`
  // returns false (asked about every kListenSlice). False when the
  // subscription could not be made.
  static constexpr std::chrono::milliseconds kListenSlice{100};
  bool Listen(std::string_view channel, std::chrono::milliseconds duration,
              const std::function<void(std::string_view)>& on_message,
              const std::function<bool()>& keep_going);

  const std::string& error() const { return error_; }
  RedisCounters counters() const;

 private:
  // Sends `wire` (`count` commands, the first one on `key`) to the node that
  // owns `key`, following redirects; on success *used is the connection.
  bool Exchange(std::string_view key, const std::string& wire, size_t count,
                std::vector<RedisReply>* replies, Connection** used);
  // Drops `connection` after a failure; `why` for the log and error().
  void DropAfterFailure(Connection* connection, const std::string& why, bool failover);
  // INFO memory of a new data-node connection: can it evict our keys?
  bool CheckEviction(Connection& connection, std::string* error);
  // Replicas to wait for given a ROLE reply; false (with error_) when the
  // node is not a primary or the policy cannot be met.
  bool ReplicasToWaitFor(Connection* connection, const RedisReply& role, uint32_t* count);
  void Log(lease::LogLevel level, const std::string& message) const;

  const RedisClientOptions options_;
  ConnectOptions data_nodes_;
  std::unique_ptr<Topology> topology_;
  std::string error_;
  std::string tls_error_;  // the TLS context could not be made: every call fails so
  bool in_failover_ = false;  // a not-writable reply was logged; cleared by a success
  bool role_unsupported_logged_ = false;

  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> replica_ack_failures_{0};
  std::atomic<bool> eviction_possible_{false};
};

}  // namespace katsubushi::redis
