// Topology: where the commands for a key go, and how that node is found
// again after a failover. Three kinds, one interface:
//
//   standalone  the URL's host, resolved again at every connect: a DNS name
//               that moved to the new primary (ElastiCache's primary
//               endpoint, a Valkey service name) is followed.
//   sentinel    each sentinel in turn is asked for the primary's address
//               (SENTINEL get-master-addr-by-name); the first that answers
//               moves to the front of the list; the address is confirmed with
//               ROLE before use, and asked again at every reconnect (Redis's
//               Sentinel client guidelines).
//   cluster     the slot map is learned from CLUSTER SLOTS through any node
//               known (the URL's seeds, then every node the map named), and
//               learned again after a MOVED or a dropped connection; one
//               connection per node.
//
// A connection is dropped by the client (redis_client.h) after a transport
// error or an error reply saying the node cannot take writes; the next Get()
// then finds the node anew.
//
// Not thread-safe: one owner (the RedisClient).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "katsubushi/lease/lease_log.h"
#include "katsubushi/redis/connection.h"
#include "katsubushi/redis/redis_url.h"

namespace katsubushi::redis {

class Topology {
 public:
  // Called for each new connection to a data node, before its first command
  // (the client checks the node's eviction policy there). False rejects it.
  using OnConnect = std::function<bool(Connection&, std::string* error)>;

  virtual ~Topology() = default;
  // The connection for commands on `key` (any writable node for an empty key),
  // opened when needed; null with *error.
  virtual Connection* Get(std::string_view key, std::string* error) = 0;
  // A new connection of its own, for a subscription.
  virtual std::unique_ptr<Connection> OpenSubscriber(std::string* error) = 0;
  // Forgets a connection that failed (and, in a cluster, the slot map).
  virtual void Drop(Connection* connection) = 0;
  // A MOVED reply: the slot map is stale.
  virtual void SlotMoved() {}
};

std::unique_ptr<Topology> MakeTopology(const RedisUrl& url, const ConnectOptions& data_nodes,
                                       Topology::OnConnect on_connect, lease::LogFunction log);

// The cluster slot of a key: CRC16 (XMODEM) of the key, or of its {hash tag}
// when it has a non-empty one, modulo 16384.
int HashSlot(std::string_view key);

}  // namespace katsubushi::redis
