#include "katsubushi/client/client.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "katsubushi/client/backoff.h"
#include "katsubushi/client/connection.h"
#include "katsubushi/client/reply.h"
#include "katsubushi/client/server_address.h"
#include "katsubushi/tls/tls_client.h"

namespace katsubushi {
namespace client {

// Idle connections kept per server; more than this are closed after use.
inline constexpr size_t kMaxIdleConnectionsPerServer = 16;
// How much one recv() may read.
inline constexpr size_t kReceiveChunkBytes = 16 * 1024;

struct Server {
  Server(ServerAddress a, const TlsDial& t, Clock& clock, const ClientOptions& options)
      : address(std::move(a)), tls(t), backoff(clock, options.backoff_initial, options.backoff_max) {}

  Connection TakeIdle() {
    std::lock_guard lock(mu);
    if (idle.empty()) return Connection();
    Connection c = std::move(idle.back());
    idle.pop_back();
    return c;
  }
  void PutIdle(Connection c) {
    std::lock_guard lock(mu);
    if (idle.size() < kMaxIdleConnectionsPerServer) idle.push_back(std::move(c));
  }
  void DropIdle() {
    std::vector<Connection> dropped;
    std::lock_guard lock(mu);
    dropped.swap(idle);
  }

  const ServerAddress address;
  const TlsDial& tls;  // the Client's
  ServerBackoff backoff;
  std::mutex mu;
  std::vector<Connection> idle;  // guarded by mu
};

namespace {

struct Failure {
  Status status;
  int sys_errno = 0;
  std::string detail;  // TLS: OpenSSL's or the certificate's reason
};

void Describe(const Server& server, const Failure& failure, std::string* why) {
  if (why == nullptr) return;
  if (!why->empty()) why->append("; ");
  why->append(server.address.text).append(": ").append(failure.status.message());
  if (failure.sys_errno != 0) {
    char buffer[128];
    // GNU strerror_r: returns the message, which may or may not be `buffer`.
    const char* text = ::strerror_r(failure.sys_errno, buffer, sizeof(buffer));
    why->append(" (").append(text).append(")");
  }
  if (!failure.detail.empty()) why->append(" (").append(failure.detail).append(")");
}

// One request and its reply on one connection. `pooled` says whether the
// connection may come from the idle pool.
Status Attempt(Server& server, std::span<uint64_t> out, bool pooled, Deadline deadline,
               Failure* failure) {
  thread_local std::string request;
  thread_local std::string reply;
  const bool http = server.address.transport == Transport::kHttp;
  IoFailure io;
  Connection connection = pooled ? server.TakeIdle() : Connection();
  const bool reused = connection.valid();
  auto fail = [&](Status status, int sys_errno, std::string detail = {}) {
    // Stale pooled connections usually come in sets (the server restarted or
    // idled them all out): the retry and later calls start afresh.
    if (reused) server.DropIdle();
    *failure = {status, sys_errno, std::move(detail)};
    return status;
  };
  if (!reused) {
    connection = Connection::Open(server.address, server.tls, deadline, &io);
    if (!connection.valid()) return fail(io.status, io.sys_errno, std::move(io.detail));
  }
  request.clear();
  if (http) {
    AppendHttpRequest(server.address, out.size(), &request);
  } else {
    AppendMemcacheRequest(out.size(), &request);
  }
  if (!connection.SendAll(request, deadline, &io)) return fail(io.status, io.sys_errno, std::move(io.detail));
  reply.clear();
  while (true) {
    if (reply.size() > kMaxReplyBytes + kMaxHttpHeaderBytes) return fail(kReplyTooLarge, 0);
    bool eof = false;
    if (!connection.Receive(&reply, kReceiveChunkBytes, deadline, &eof, &io)) {
      return fail(io.status, io.sys_errno, std::move(io.detail));
    }
    if (eof) return fail(kClosedEarly, 0);
    const ParseResult parsed = http ? ParseHttpReply(reply, out) : ParseMemcacheReply(reply, out);
    if (parsed.kind == ParseResult::Kind::kNeedMore) continue;
    if (parsed.kind == ParseResult::Kind::kError) return fail(parsed.error, 0);
    // Bytes past the reply were never asked for: the stream is out of step.
    if (parsed.consumed != reply.size()) return fail(kMalformedReply, 0);
    if (parsed.keep_alive) server.PutIdle(std::move(connection));
    return Status::Ok();
  }
}

size_t RandomIndex(size_t n) {
  thread_local std::minstd_rand rng(static_cast<unsigned>(
      std::random_device{}() ^ std::hash<std::thread::id>{}(std::this_thread::get_id())));
  return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
}

}  // namespace
}  // namespace client

using client::Server;

Client::Client(const ClientOptions& options) : options_(options) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Open(const ClientOptions& options, std::string* why) {
  if (options.servers.empty()) return kNoServers;
  if (options.timeout.count() <= 0 || options.attempt_timeout.count() <= 0 ||
      options.backoff_initial.count() <= 0 || options.backoff_initial > options.backoff_max) {
    return kBadTimeout;
  }
  std::vector<client::ServerAddress> addresses;
  bool any_tls = false;
  for (const std::string& text : options.servers) {
    Result<client::ServerAddress> address = client::ParseServerAddress(text);
    if (!address.ok()) {
      if (why != nullptr) *why = text;
      return address.status();
    }
    any_tls |= address->tls;
    addresses.push_back(std::move(address).value());
  }
  std::unique_ptr<Client> c(new Client(options));
  c->tls_ = std::make_unique<client::TlsDial>();
  const ClientTlsOptions& t = options.tls;
  // Named files are loaded even with no TLS server, so that a typo shows now.
  if (any_tls || !t.ca_file.empty() || !t.cert_file.empty() || !t.key_file.empty()) {
    std::string error;
    c->tls_->context = tls::MakeClientContext({t.ca_file, t.cert_file, t.key_file, t.skip_verify}, &error);
    if (!c->tls_->context) {
      if (why != nullptr) *why = std::move(error);
      return kBadTlsFiles;
    }
    c->tls_->server_name = t.server_name;
    c->tls_->check_name = !t.skip_verify;
  }
  Clock& clock = options.clock != nullptr ? *options.clock : SystemClock::Instance();
  for (client::ServerAddress& address : addresses) {
    c->servers_.push_back(std::make_unique<Server>(std::move(address), *c->tls_, clock, options));
  }
  return c;
}

Result<uint64_t> Client::Fetch(std::string* why) {
  uint64_t id = 0;
  Status status = FetchMulti(std::span<uint64_t>(&id, 1), why);
  if (!status.ok()) return status;
  return id;
}

Result<std::vector<uint64_t>> Client::FetchMulti(size_t n, std::string* why) {
  if (n == 0 || n > kMaxIdsPerRequest) return kBadCount;
  std::vector<uint64_t> ids(n);
  Status status = FetchMulti(std::span<uint64_t>(ids), why);
  if (!status.ok()) return status;
  return ids;
}

Status Client::FetchMulti(std::span<uint64_t> out, std::string* why) {
  if (out.empty() || out.size() > kMaxIdsPerRequest) return kBadCount;
  if (why != nullptr) why->clear();
  const auto start = std::chrono::steady_clock::now();
  const client::Deadline deadline = start + options_.timeout;
  const size_t n = servers_.size();
  const size_t first = options_.random_start && n > 1 ? client::RandomIndex(n) : 0;

  client::Failure last{client::kTimedOut, 0, {}};
  // Up to two attempts at one server; true when IDs are in `out`.
  auto try_server = [&](Server& server) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      const client::Deadline attempt_deadline = std::min(deadline, now + options_.attempt_timeout);
      if (client::Attempt(server, out, attempt == 0, attempt_deadline, &last).ok()) {
        server.backoff.RecordSuccess();
        return true;
      }
      client::Describe(server, last, why);
      if (last.status == client::kTimedOut) break;
    }
    server.backoff.RecordFailure();
    return false;
  };

  // Servers in backoff wait here (allocates only when one is skipped).
  std::vector<Server*> deferred;
  for (size_t k = 0; k < n; ++k) {
    Server& server = *servers_[(first + k) % n];
    if (server.backoff.Skipped()) {
      deferred.push_back(&server);
      continue;
    }
    if (try_server(server)) return Status::Ok();
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  for (Server* server : deferred) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (try_server(*server)) return Status::Ok();
  }
  std::fill(out.begin(), out.end(), 0);
  if (why != nullptr && why->empty()) why->assign("no attempt fitted in the call's timeout");
  return last.status;
}

}  // namespace katsubushi
