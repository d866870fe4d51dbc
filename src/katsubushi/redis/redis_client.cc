#include "katsubushi/redis/redis_client.h"

#include <charconv>

#include "katsubushi/redis/error_reply.h"
#include "katsubushi/redis/topology.h"

namespace katsubushi::redis {
namespace {

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 [::1]:6381" -> the address.
bool ParseRedirect(std::string_view error, NodeAddress* out) {
  const size_t space = error.rfind(' ');
  if (space == std::string_view::npos) return false;
  std::string_view address = error.substr(space + 1);
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string_view port = address.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) return false;
  out->host = host.empty() ? std::string("127.0.0.1") : std::string(host);
  out->port = static_cast<uint16_t>(value);
  return true;
}

// "maxmemory:1073741824\r\n...maxmemory_policy:volatile-lru\r\n" -> value of `field`.
std::string_view InfoField(std::string_view info, std::string_view field) {
  size_t at = 0;
  while (at < info.size()) {
    const size_t end = std::min(info.find('\n', at), info.size());
    std::string_view line = info.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > field.size() && line.starts_with(field) && line[field.size()] == ':') {
      return line.substr(field.size() + 1);
    }
    at = end + 1;
  }
  return {};
}

}  // namespace

RedisClient::RedisClient(RedisClientOptions options) : options_(std::move(options)) {
  data_nodes_.username = options_.url.username;
  data_nodes_.password = options_.url.password;
  data_nodes_.has_password = options_.url.has_password;
  data_nodes_.db = options_.url.db;
  data_nodes_.timeouts = options_.timeouts;
  if (options_.url.tls) {
    data_nodes_.verify_peer = !options_.tls.skip_verify;
    data_nodes_.tls = tls::MakeClientContext(options_.tls, &tls_error_);
    if (!data_nodes_.tls && tls_error_.empty()) tls_error_ = "cannot make a TLS context";
  }
  topology_ = MakeTopology(
      options_.url, data_nodes_,
      [this](Connection& connection, std::string* error) { return CheckEviction(connection, error); },
      options_.log);
}

RedisClient::~RedisClient() = default;

void RedisClient::Log(lease::LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

RedisCounters RedisClient::counters() const {
  return RedisCounters{reconnects_.load(std::memory_order_relaxed),
                       replica_ack_failures_.load(std::memory_order_relaxed),
                       eviction_possible_.load(std::memory_order_relaxed)};
}

bool RedisClient::CheckEviction(Connection& connection, std::string* error) {
  RedisReply info;
  std::string why;
  if (!connection.Run({"INFO", "memory"}, &info, &why)) {
    *error = connection.address().ToString() + ": " + why;
    return false;
  }
  if (info.is_error()) {  // INFO may be refused to an ACL user; not a reason to fail
    Log(lease::LogLevel::kDebug, "cannot read " + connection.address().ToString() +
                                     "'s eviction policy (INFO memory: " + info.str + ")");
    return true;
  }
  const std::string_view policy = InfoField(info.str, "maxmemory_policy");
  const std::string_view maxmemory = InfoField(info.str, "maxmemory");
  // Without a memory limit nothing is evicted; noeviction never evicts; the
  // volatile-* policies evict keys with a TTL (ours) and allkeys-* any key.
  const bool possible = !maxmemory.empty() && maxmemory != "0" && !policy.empty() && policy != "noeviction";
  eviction_possible_.store(possible, std::memory_order_relaxed);
  if (possible) {
    Log(lease::LogLevel::kWarning,
        "Redis " + connection.address().ToString() + " may evict the lease keys (maxmemory " +
            std::string(maxmemory) + ", maxmemory-policy " + std::string(policy) +
            "): an evicted lease or watermark can lead to duplicate IDs; use maxmemory-policy "
            "noeviction or a Redis of its own for katsubushi");
  }
  return true;
}

void RedisClient::DropAfterFailure(Connection* connection, const std::string& why, bool failover) {
  error_ = connection->address().ToString() + ": " + why;
  if (failover && !in_failover_) {
    in_failover_ = true;
    Log(lease::LogLevel::kWarning,
        "Redis failover: " + connection->address().ToString() + " answered \"" + why +
            "\"; it no longer takes writes, reconnecting to " + options_.url.Redacted());
  }
  topology_->Drop(connection);
  reconnects_.fetch_add(1, std::memory_order_relaxed);
}

bool RedisClient::Exchange(std::string_view key, const std::string& wire, size_t count,
                           std::vector<RedisReply>* replies, Connection** used) {
  if (!tls_error_.empty()) {
    error_ = "TLS: " + tls_error_;
    return false;
  }
  for (int attempt = 0; attempt <= kMaxRedirects; ++attempt) {
    Connection* connection = topology_->Get(key, &error_);
    if (connection == nullptr) return false;
    std::string why;
    if (!connection->Exchange(wire, count, replies, &why)) {
      DropAfterFailure(connection, why, false);
      return false;
    }
    const RedisReply& first = replies->front();
    if (!first.is_error()) {
      if (in_failover_) {
        in_failover_ = false;
        Log(lease::LogLevel::kInfo, "Redis answers writes again at " + connection->address().ToString());
      }
      *used = connection;
      return true;
    }
    const ErrorReplyKind kind = ClassifyErrorReply(first.str);
    if (DropsConnection(kind)) {
      DropAfterFailure(connection, first.str, true);
      return false;
    }
    NodeAddress target;
    if (options_.url.cluster() && kind == ErrorReplyKind::kMoved && ParseRedirect(first.str, &target)) {
      topology_->SlotMoved();
      continue;
    }
    if (options_.url.cluster() && kind == ErrorReplyKind::kAsk && ParseRedirect(first.str, &target)) {
      // One command on the importing node, preceded by ASKING; the slot's
      // owner stays where it was.
      ConnectOptions one_off = data_nodes_;
      one_off.db = 0;
      std::unique_ptr<Connection> importing = Connection::Open(target, one_off, &error_);
      if (!importing) return false;
      std::string asking;
      AppendCommand({"ASKING"}, &asking);
      std::vector<RedisReply> with_asking;
      if (!importing->Exchange(asking + wire, count + 1, &with_asking, &error_)) return false;
      replies->assign(std::make_move_iterator(with_asking.begin() + 1),
                      std::make_move_iterator(with_asking.end()));
      *used = nullptr;
      return true;
    }
    *used = connection;
    return true;  // the command's own error
  }
  error_ = "too many cluster redirects";
  return false;
}

bool RedisClient::Run(std::string_view key, Args args, RedisReply* reply) {
  std::string wire;
  AppendCommand(args, &wire);
  std::vector<RedisReply> replies;
  Connection* used = nullptr;
  if (!Exchange(key, wire, 1, &replies, &used)) return false;
  *reply = std::move(replies.front());
  return true;
}

bool RedisClient::ReplicasToWaitFor(Connection* connection, const RedisReply& role, uint32_t* count) {
  const uint32_t min = options_.replicas.min_replicas;
  if (role.is_error() || role.type != RedisReply::Type::kArray || role.elements.empty()) {
    // ROLE refused (an ACL, a managed service): the replicas cannot be
    // listed, so only min_replicas can be asked for.
    if (!role_unsupported_logged_) {
      role_unsupported_logged_ = true;
      Log(lease::LogLevel::kWarning, "Redis does not answer ROLE (" + role.str +
                                         "): lease writes wait for " + std::to_string(min) +
                                         " replicas (-redis-min-replicas), not for every connected one");
    }
    *count = min;
    return true;
  }
  if (role.elements[0].str != "master") {
    DropAfterFailure(connection, "ROLE is " + role.elements[0].str, true);
    return false;
  }
  const uint32_t connected = role.elements.size() >= 3 && role.elements[2].type == RedisReply::Type::kArray
                                 ? static_cast<uint32_t>(role.elements[2].elements.size())
                                 : 0;
  if (connected < min) {
    error_ = connection->address().ToString() + " has " + std::to_string(connected) +
             " replicas connected; lease writes need " + std::to_string(min) + " (-redis-min-replicas)";
    return false;
  }
  *count = connected;
  return true;
}

RedisClient::Write RedisClient::RunWrite(std::string_view key, Args args, RedisReply* reply) {
  if (options_.replicas.timeout.count() <= 0) return Run(key, args, reply) ? Write::kDone : Write::kNoAnswer;
  std::string wire;
  AppendCommand(args, &wire);
  AppendCommand({"ROLE"}, &wire);
  std::vector<RedisReply> replies;
  Connection* used = nullptr;
  if (!Exchange(key, wire, 2, &replies, &used)) return Write::kNoAnswer;
  *reply = std::move(replies[0]);
  if (reply->is_error()) return Write::kDone;  // nothing written
  if (used == nullptr) {
    // An ASK hop (a slot being migrated) went over a one-off connection,
    // which is gone: WAIT cannot ask about it, so it does not count.
    replica_ack_failures_.fetch_add(1, std::memory_order_relaxed);
    error_ = "a lease write redirected by ASK cannot be checked against the replicas";
    return Write::kNotReplicated;
  }
  uint32_t replicas = 0;
  if (!ReplicasToWaitFor(used, replies[1], &replicas)) {
    replica_ack_failures_.fetch_add(1, std::memory_order_relaxed);
    return Write::kNotReplicated;
  }
  if (replicas == 0) return Write::kDone;
  RedisReply acked;
  std::string wait;
  AppendCommand({"WAIT", std::to_string(replicas), std::to_string(options_.replicas.timeout.count())}, &wait);
  std::vector<RedisReply> wait_reply;
  std::string why;
  if (!used->Exchange(wait, 1, &wait_reply, &why, options_.replicas.timeout)) {
    DropAfterFailure(used, why, false);
    return Write::kNoAnswer;
  }
  if (wait_reply[0].is_error() && DropsConnection(ClassifyErrorReply(wait_reply[0].str))) {
    DropAfterFailure(used, wait_reply[0].str, true);
    return Write::kNoAnswer;
  }
  if (wait_reply[0].type == RedisReply::Type::kInteger &&
      wait_reply[0].integer >= static_cast<int64_t>(replicas)) {
    return Write::kDone;
  }
  replica_ack_failures_.fetch_add(1, std::memory_order_relaxed);
  error_ = used->address().ToString() + ": " +
           (wait_reply[0].is_error() ? "WAIT: " + wait_reply[0].str
                                     : std::to_string(wait_reply[0].integer) + " of " + std::to_string(replicas) +
                                           " replicas acknowledged the lease write within " +
                                           std::to_string(options_.replicas.timeout.count()) + " ms");
  return Write::kNotReplicated;
}

bool RedisClient::Listen(std::string_view channel, std::chrono::milliseconds duration,
                         const std::function<void(std::string_view)>& on_message,
                         const std::function<bool()>& keep_going) {
  if (!tls_error_.empty()) {
    error_ = "TLS: " + tls_error_;
    return false;
  }
  std::unique_ptr<Connection> subscriber = topology_->OpenSubscriber(&error_);
  if (!subscriber) return false;
  const auto until = std::chrono::steady_clock::now() + duration;
  std::string why;
  RedisReply reply;
  if (!subscriber->Send({"SUBSCRIBE", channel}, &why) ||
      subscriber->Receive(&reply, std::chrono::steady_clock::now() + options_.timeouts.command, &why) !=
          Transport::ReadResult::kData) {
    error_ = subscriber->address().ToString() + ": SUBSCRIBE: " + why;
    return false;
  }
  if (reply.is_error()) {
    error_ = "SUBSCRIBE: " + reply.str;
    return false;
  }
  while (keep_going()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) break;
    const Transport::ReadResult r = subscriber->Receive(&reply, std::min(until, now + kListenSlice), &why);
    if (r == Transport::ReadResult::kTimeout) continue;
    if (r != Transport::ReadResult::kData) break;  // what was heard so far still counts
    if (reply.type == RedisReply::Type::kArray && reply.elements.size() == 3 &&
        reply.elements[0].str == "message") {
      on_message(reply.elements[2].str);
    }
  }
  return true;
}

}  // namespace katsubushi::redis
