#include "health_check.h"

#include <sys/un.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "katsubushi/client/connection.h"
#include "katsubushi/client/reply.h"
#include "katsubushi/client/server_address.h"
#include "katsubushi/tls/tls_client.h"

namespace katsubushi {
namespace {

using Clock = std::chrono::steady_clock;
using client::Connection;
using client::IoFailure;

// A reason is what the one line says; std::nullopt from an I/O step means it
// succeeded.
using Failure = std::optional<std::string>;

// The client library's I/O failure in the check's words.
std::string Describe(const IoFailure& io) {
  if (io.status == client::kTimedOut) {
    return "no answer within " + std::to_string(kHealthCheckTimeout.count()) + " ms";
  }
  std::string what = io.status == client::kConnectFailed ? "connect"
                     : io.status == client::kSendFailed  ? "send"
                     : io.status == client::kReceiveFailed ? "recv"
                                                           : std::string(io.status.message());
  if (io.sys_errno != 0) what.append(": ").append(std::strerror(io.sys_errno));
  if (!io.detail.empty()) what.append(" (").append(io.detail).append(")");
  return what;
}

Failure Open(const client::ServerAddress& address, const client::TlsDial& tls, Clock::time_point deadline,
             Connection* out) {
  IoFailure io;
  *out = Connection::Open(address, tls, deadline, &io);
  if (!out->valid()) return Describe(io);
  return std::nullopt;
}

// Reads into *reply until `complete(*reply)` holds or the peer closes.
template <typename Complete>
Failure Receive(Connection& c, Clock::time_point deadline, std::string* reply, Complete complete) {
  while (!complete(*reply)) {
    if (reply->size() > kHealthCheckMaxReply) return "reply too long";
    bool eof = false;
    IoFailure io;
    if (!c.Receive(reply, 512, deadline, &eof, &io)) return Describe(io);
    if (eof) return std::nullopt;  // closed: the caller judges what came
  }
  return std::nullopt;
}

std::string FirstLine(std::string_view text) {
  text = text.substr(0, text.find_first_of("\r\n"));
  constexpr size_t kShown = 200;
  return std::string(text.substr(0, kShown));
}

client::ServerAddress Loopback(int port, bool tls) {
  client::ServerAddress address;
  address.host = "127.0.0.1";
  address.port = static_cast<uint16_t>(port);
  address.tls = tls;
  return address;
}

// How the check dials a TLS front: the chain verified against -tls-ca-file
// when given (not the name: 127.0.0.1 is seldom in a server's certificate),
// else not verified at all, as a load balancer checks its targets; the
// -tls-client-cert-file pair presented when the front asks for one.
Failure MakeTlsDial(const Config& config, client::TlsDial* out) {
  if (!config.tls_client_ca_file.empty() && config.tls_client_cert_file.empty()) {
    return "the front asks for a client certificate (-tls-client-ca-file): give the check one with "
           "-tls-client-cert-file and -tls-client-key-file";
  }
  std::string error;
  out->context = tls::MakeClientContext({config.tls_ca_file, config.tls_client_cert_file, config.tls_client_key_file,
                                         /*skip_verify=*/config.tls_ca_file.empty()},
                                        &error);
  if (!out->context) return error;
  out->check_name = false;
  return std::nullopt;
}

// Returns the reason it is unhealthy, or nullopt.
Failure CheckHttp(const client::ServerAddress& address, const client::TlsDial& tls, Clock::time_point deadline) {
  Connection c;
  if (Failure f = Open(address, tls, deadline, &c)) return f;
  IoFailure io;
  if (!c.SendAll("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", deadline,
                 &io)) {
    return Describe(io);
  }
  std::string reply;
  // Connection: close: the whole answer has come when the server closes.
  if (Failure f = Receive(c, deadline, &reply, [](const std::string&) { return false; })) return f;
  const size_t status_end = reply.find("\r\n");
  if (status_end == std::string::npos) return "no HTTP status line in the reply";
  const std::string status = reply.substr(0, status_end);  // HTTP/1.1 200 OK
  if (status.rfind("HTTP/1.", 0) != 0 || status.size() < 12) return "not an HTTP reply: " + FirstLine(status);
  if (status.compare(9, 3, "200") == 0) return std::nullopt;
  const size_t body = reply.find("\r\n\r\n");
  return "answered " + status.substr(9) +
         (body == std::string::npos ? "" : ": " + FirstLine(reply.substr(body + 4)));
}

// A memcached "get id", judged by the client library's reply parser.
Failure CheckMemcache(const client::ServerAddress& address, const client::TlsDial& tls,
                      Clock::time_point deadline) {
  Connection c;
  if (Failure f = Open(address, tls, deadline, &c)) return f;
  std::string request;
  client::AppendMemcacheRequest(1, &request);
  IoFailure io;
  if (!c.SendAll(request, deadline, &io)) return Describe(io);
  std::string reply;
  uint64_t id = 0;
  client::ParseResult parsed;
  auto complete = [&](const std::string& r) {
    parsed = client::ParseMemcacheReply(r, std::span<uint64_t>(&id, 1));
    return parsed.kind != client::ParseResult::Kind::kNeedMore;
  };
  if (Failure f = Receive(c, deadline, &reply, complete)) return f;
  if (parsed.kind == client::ParseResult::Kind::kDone) return std::nullopt;
  if (reply.empty()) return "the server closed the connection without an answer";
  return "get answered " + FirstLine(reply);
}

}  // namespace

int RunHealthCheck(const Config& config) {
  const Clock::time_point deadline = Clock::now() + kHealthCheckTimeout;
  std::string what;
  Failure failure;
  client::TlsDial tls;
  if (config.http_port != 0) {
    what = std::string(config.tls.http ? "HTTPS" : "HTTP") + " 127.0.0.1:" + std::to_string(config.http_port) +
           "/healthz";
    failure = config.tls.http ? MakeTlsDial(config, &tls) : std::nullopt;
    if (!failure) failure = CheckHttp(Loopback(config.http_port, config.tls.http), tls, deadline);
  } else if (!config.sock.empty()) {
    what = "memcached " + config.sock;
    client::ServerAddress address;
    address.transport = client::Transport::kMemcacheUnix;
    address.unix_path = config.sock;
    failure = config.sock.size() < sizeof(sockaddr_un::sun_path) ? CheckMemcache(address, tls, deadline)
                                                                 : "socket path too long";
  } else if (config.port != 0) {
    what = std::string(config.tls.memcache ? "memcached over TLS" : "memcached") + " 127.0.0.1:" +
           std::to_string(config.port);
    failure = config.tls.memcache ? MakeTlsDial(config, &tls) : std::nullopt;
    if (!failure) failure = CheckMemcache(Loopback(config.port, config.tls.memcache), tls, deadline);
  } else {
    std::printf("unhealthy: nothing to check (no -http-port, -sock or -port)\n");
    return 1;
  }
  if (failure) {
    std::printf("unhealthy: %s: %s\n", what.c_str(), failure->c_str());
    return 1;
  }
  std::printf("healthy: %s\n", what.c_str());
  return 0;
}

}  // namespace katsubushi
