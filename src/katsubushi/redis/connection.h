// Connection: one authenticated connection to one Redis node (a data node or
// a sentinel), commands sent and replies read by a deadline. Knows nothing of
// primaries, clusters or failovers: topology.h decides where to connect and
// when to drop a connection.
//
// Not thread-safe: one owner at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "katsubushi/redis/reply.h"
#include "katsubushi/redis/transport.h"
#include "katsubushi/tls/tls_client.h"

namespace katsubushi::redis {

struct RedisTimeouts {
  std::chrono::milliseconds connect{1000};  // TCP and TLS handshake, and AUTH/SELECT
  std::chrono::milliseconds command{1000};  // one round trip
};

struct NodeAddress {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  // host:port, with brackets around an IPv6 host; for logs and as a map key.
  std::string ToString() const;
  friend bool operator==(const NodeAddress&, const NodeAddress&) = default;
};

struct ConnectOptions {
  tls::ClientContext tls;  // null: plain TCP
  bool verify_peer = true;
  std::string username;    // empty: the default user
  std::string password;
  bool has_password = false;
  int db = 0;              // SELECTed when not 0
  RedisTimeouts timeouts;
};

class Connection {
 public:
  // Connects, shakes hands, AUTHs and SELECTs; null with *error.
  static std::unique_ptr<Connection> Open(const NodeAddress& address, const ConnectOptions& options,
                                          std::string* error);

  // Sends `wire` (one or more commands, reply.h's AppendCommand) and reads
  // `count` replies, all by `extra` past the command timeout. False when they
  // did not all come (the connection is then unusable: drop it).
  bool Exchange(const std::string& wire, size_t count, std::vector<RedisReply>* replies,
                std::string* error, std::chrono::milliseconds extra = std::chrono::milliseconds(0));
  // One command, one reply.
  bool Run(Args args, RedisReply* reply, std::string* error);

  // For a subscription: sends without waiting, and reads the next pushed
  // message by `deadline` (kTimeout leaves the connection usable).
  bool Send(Args args, std::string* error);
  Transport::ReadResult Receive(RedisReply* reply, Deadline deadline, std::string* error);

  const NodeAddress& address() const { return address_; }

 private:
  Connection(NodeAddress address, std::unique_ptr<Transport> transport, RedisTimeouts timeouts)
      : address_(std::move(address)), transport_(std::move(transport)), timeouts_(timeouts) {}

  NodeAddress address_;
  std::unique_ptr<Transport> transport_;
  RedisTimeouts timeouts_;
  ReplyReader reader_;
};

}  // namespace katsubushi::redis
