// PeerSockets: finds the descriptor of a TLS connection from the peer name
// gRPC gives its calls, so that ReplyCoalescer can cork it.
//
// Why: a connection handed to gRPC with credentials (ExternalConnectionAcceptor,
// tls_credentials.h) is named by its peer address ("ipv4:127.0.0.1:51234",
// "ipv6:[::1]:51234", the brackets perhaps %-encoded), not "fd:<n>" as
// plaintext ones are. ChannelAcceptor knows both when it accepts, and records
// them here before gRPC sees the connection.
//
// Why it cannot go stale: a lookup comes from a call, which holds its
// connection open, and TCP keeps one peer address per open connection to one
// listener; a newer connection from the same address overwrites the entry
// before gRPC sees it. An entry is dropped when its descriptor number is
// accepted again (the old connection must be closed by then), so there are
// never more entries than descriptors.
//
// Also where the front learns that a TLS handshake finished: a connection's
// first reply (gRPC 1.51 reports neither success nor failure of its
// handshakes; ChannelAcceptor counts what fails before gRPC has the bytes).
//
// Thread safety: every method from any thread.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "grpc/backend.h"

namespace katsubushi::grpc_api {

class PeerSockets {
 public:
  explicit PeerSockets(Backend& backend) : backend_(backend) {}

  // The acceptor, before gRPC has `fd`.
  void Add(int fd, const sockaddr_storage& peer);
  // The descriptor of the connection gRPC names `peer`, or -1. The first
  // time a connection is found, its handshake is counted as done.
  int Find(std::string_view peer);

  // An address and port, IPv4 as IPv4-mapped IPv6 so that both spellings of
  // one peer are one key; nullopt for anything else (a unix socket).
  struct Key {
    std::array<uint8_t, 16> address{};
    uint16_t port = 0;
    bool operator==(const Key&) const = default;
  };
  static std::optional<Key> KeyOf(const sockaddr_storage& peer);
  static std::optional<Key> KeyOf(std::string_view grpc_peer);

 private:
  struct KeyHash {
    size_t operator()(const Key& key) const;
  };
  struct Entry {
    int fd;
    bool used;  // a reply has been sent: the handshake is counted
  };

  Backend& backend_;
  std::mutex mutex_;
  std::unordered_map<Key, Entry, KeyHash> by_peer_;  // guarded by mutex_
  std::unordered_map<int, Key> by_fd_;              // guarded by mutex_
};

}  // namespace katsubushi::grpc_api
