// katsubushi::Client: fetches IDs from a set of katsubushi servers (this
// project's or go-katsubushi), with failover, as go-katsubushi's NewClient
// and NewHTTPClient do for Go programs.
//
//   katsubushi::ClientOptions options;
//   options.servers = {"10.0.0.1:11212", "unix:/run/kb.sock", "http://10.0.0.2:8080/kb",
//                      "tls://kb.internal:11212", "https://kb.internal:8080"};
//   options.tls.ca_file = "/etc/katsubushi/ca.crt";           // for tls:// and https://
//   auto client = katsubushi::Client::Open(options);         // no I/O yet
//   katsubushi::Result<uint64_t> id = (*client)->Fetch();
//   if (!id.ok()) log(id.status().message());
//
// Servers: see server_address.h (memcached text protocol by default, over
// TCP or a unix socket; or HTTP; tls:// and https:// are the same over TLS). FetchMulti(n) asks for 1..1000 IDs in one
// request (memcached "get 0 1 ... n-1", HTTP GET /ids?n=N).
//
// Failover, exactly:
//  1. Servers are tried in the order given (with random_start, from a random
//     one, then on in order, wrapping round).
//  2. Each server gets up to two attempts, as in go-katsubushi's client. An
//     attempt is connect (unless a pooled connection is free), send one
//     request, read one reply, bounded by attempt_timeout and by the call's
//     deadline. It fails on: a connect, send or receive error; the server
//     closing before the reply is complete; an error reply (SERVER_ERROR,
//     ERROR, CLIENT_ERROR, an HTTP status other than 200); a malformed reply.
//     The second attempt always uses a new connection, and is made unless the
//     first one timed out: a server that stalls is left at once, so a stopped
//     server costs one attempt_timeout, not two. So one call sends at most two
//     requests to one server, and at most one after a timeout.
//  3. A server that failed its attempts is skipped by later calls for 100 ms,
//     doubling per consecutive failure to 5 s (backoff.h); a success clears
//     it. Skipped servers are tried last, in order, only after every other
//     server failed in this call; so when all are skipped, all are tried.
//  4. The whole call ends by `timeout` from its start. Then, or when every
//     server failed, the result is the last failure's Status (its code and
//     reason); `why`, when given, lists each failed attempt:
//     "127.0.0.1:11212: connect failed (Connection refused); ...", and for
//     TLS the certificate's or OpenSSL's reason: "tls://10.0.0.1:11212: TLS
//     handshake failed: server certificate not verified (unable to get local
//     issuer certificate)".
//
// TLS: the handshake is part of the attempt and bounded by its deadline (a
// server that stalls it costs one attempt_timeout); a plaintext server
// answering a TLS client fails at its first bytes. A TLS connection is pooled
// and reused like any other, so the handshake is paid once per connection.
// No ID is ever returned from a reply that is not exactly right (reply.h):
// an error gives no ID, and FetchMulti's output is all zeros.
// A retry never repeats an ID: a request that timed out may have consumed IDs
// at the server (they are lost, never reused), and a connection that failed
// is closed, so a late reply cannot be read as the answer to another request.
//
// Connections are kept open after a complete reply and reused (a small idle
// pool per server, shared by all threads); a failed attempt on a pooled
// connection drops that server's pool, since its connections are likely all
// stale (a restarted server).
//
// Thread safety: Fetch and FetchMulti may be called from any number of
// threads at once. Destroy the Client only when no call is in progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "katsubushi/clock.h"
#include "katsubushi/status.h"

namespace katsubushi {

namespace client {
struct Server;
struct TlsDial;
}

// How tls:// and https:// servers are verified, for all of them.
struct ClientTlsOptions {
  std::string ca_file;      // PEM bundle the servers' chains must end in; empty: the system's CA store
  std::string cert_file;    // client certificate chain, PEM (mutual TLS); with key_file
  std::string key_file;     // its private key, PEM
  // The name each server's certificate must carry (and that is sent as SNI)
  // instead of its host: for servers dialled by IP address whose
  // certificates name a DNS name.
  std::string server_name;
  // No chain or name check (insecure: anyone on the path can answer); what
  // a load balancer does with its targets.
  bool skip_verify = false;
};

struct ClientOptions {
  std::vector<std::string> servers;
  // Read only when a server is tls:// or https:// or a file is named; the
  // files are loaded by Open.
  ClientTlsOptions tls;
  // The deadline of one Fetch/FetchMulti call, all servers and attempts
  // included (go-katsubushi's DefaultClientTimeout).
  std::chrono::milliseconds timeout{5000};
  // One attempt at one server: connect, request, reply. Keep it well under
  // `timeout` so that a stalled server leaves time for the next.
  std::chrono::milliseconds attempt_timeout{1000};
  // Start each call at a random server instead of the first (spreads load).
  bool random_start = false;
  // Skip interval after a server fails: initial, doubling up to max.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  // Time for the backoff (tests pass a ManualClock); null = SystemClock. Must
  // outlive the Client.
  Clock* clock = nullptr;
};

inline constexpr Status kNoServers{StatusCode::kInvalidArgument, "no servers given"};
inline constexpr Status kBadTimeout{StatusCode::kInvalidArgument,
                                    "timeouts must be positive and backoff_initial <= backoff_max"};
inline constexpr Status kBadCount{StatusCode::kInvalidArgument, "n must be 1..1000"};
inline constexpr Status kBadTlsFiles{StatusCode::kInvalidArgument, "TLS files did not load"};

class Client {
 public:
  // Parses and checks the options and loads the TLS files; connects nothing
  // yet. `why`, when given, says which file did not load and why.
  static Result<std::unique_ptr<Client>> Open(const ClientOptions& options, std::string* why = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<uint64_t> Fetch(std::string* why = nullptr);
  // Fills `out` (1..1000 IDs, strictly increasing) from one reply of one server.
  Status FetchMulti(std::span<uint64_t> out, std::string* why = nullptr);
  Result<std::vector<uint64_t>> FetchMulti(size_t n, std::string* why = nullptr);

 private:
  explicit Client(const ClientOptions& options);

  ClientOptions options_;
  std::unique_ptr<client::TlsDial> tls_;  // shared by all TLS servers
  std::vector<std::unique_ptr<client::Server>> servers_;
};

}  // namespace katsubushi
