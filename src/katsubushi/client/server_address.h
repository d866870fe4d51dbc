// ServerAddress: one katsubushi server as a Client is given it.
//
//   host:port              memcached text protocol over TCP (the default)
//   [v6addr]:port          the same, IPv6 literal
//   unix:/path/to.sock     memcached text protocol over a unix socket
//   http://host:port[/p]   HTTP (GET <p>/id, <p>/ids?n=N); port 80 if absent
//   tls://host:port        memcached text protocol over TLS
//   https://host:port[/p]  HTTP over TLS; port 443 if absent
//
// Over TLS the server's certificate is verified, and must name the host (or
// the Client's TLS server_name), as ClientOptions::tls says.
// The prefix follows go-katsubushi's HTTPPathPrefix: routes are <prefix>id,
// so "/kb" and "/kb/" both give "/kb/id". Parsing does no I/O; names are
// resolved when a connection is made.
//
// Thread safety: immutable values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "katsubushi/status.h"

namespace katsubushi::client {

enum class Transport { kMemcacheTcp, kMemcacheUnix, kHttp };

struct ServerAddress {
  Transport transport = Transport::kMemcacheTcp;
  std::string host;         // TCP and HTTP: a name or a literal, without brackets
  uint16_t port = 0;        // TCP and HTTP
  std::string unix_path;    // unix sockets
  std::string http_prefix;  // HTTP: starts and ends with '/'
  bool tls = false;         // tls://, https://
  std::string text;         // as given, for error messages
};

inline constexpr Status kBadServerAddress{
    StatusCode::kInvalidArgument,
    "server address is not host:port, [v6]:port, unix:/path, tls://host:port or http[s]://host[:port][/prefix]"};

Result<ServerAddress> ParseServerAddress(std::string_view text);

}  // namespace katsubushi::client
