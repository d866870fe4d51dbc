#include "katsubushi/redis/connection.h"

namespace katsubushi::redis {

std::string NodeAddress::ToString() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string out;
  if (ipv6) out.append("[");
  out.append(host);
  if (ipv6) out.append("]");
  out.append(":").append(std::to_string(port));
  return out;
}

std::unique_ptr<Connection> Connection::Open(const NodeAddress& address, const ConnectOptions& options,
                                             std::string* error) {
  const Deadline deadline = std::chrono::steady_clock::now() + options.timeouts.connect;
  std::string why;
  std::unique_ptr<Transport> transport =
      Transport::Connect(address.host, address.port, options.tls, options.verify_peer, deadline, &why);
  if (!transport) {
    *error = address.ToString() + ": " + why;
    return nullptr;
  }
  std::unique_ptr<Connection> connection(new Connection(address, std::move(transport), options.timeouts));
  RedisReply reply;
  if (options.has_password || !options.username.empty()) {
    const bool answered = options.username.empty()
                              ? connection->Run({"AUTH", options.password}, &reply, &why)
                              : connection->Run({"AUTH", options.username, options.password}, &reply, &why);
    if (!answered || reply.is_error()) {
      *error = address.ToString() + ": AUTH: " + (answered ? reply.str : why);
      return nullptr;
    }
  }
  if (options.db != 0) {
    const std::string db = std::to_string(options.db);
    if (!connection->Run({"SELECT", db}, &reply, &why) || reply.is_error()) {
      *error = address.ToString() + ": SELECT " + db + ": " + (reply.is_error() ? reply.str : why);
      return nullptr;
    }
  }
  return connection;
}

bool Connection::Exchange(const std::string& wire, size_t count, std::vector<RedisReply>* replies,
                          std::string* error, std::chrono::milliseconds extra) {
  const Deadline deadline = std::chrono::steady_clock::now() + timeouts_.command + extra;
  if (!transport_->WriteAll(wire, deadline, error)) return false;
  replies->clear();
  char buf[4096];
  while (replies->size() < count) {
    RedisReply reply;
    switch (reader_.Pop(&reply)) {
      case ReplyReader::Next::kReply:
        replies->push_back(std::move(reply));
        continue;
      case ReplyReader::Next::kBroken:
        *error = "Redis sent a reply that is not RESP";
        return false;
      case ReplyReader::Next::kNeedMore:
        break;
    }
    size_t size = 0;
    if (transport_->Read(buf, sizeof buf, &size, deadline, error) != Transport::ReadResult::kData) return false;
    if (!reader_.Feed(buf, size)) {
      *error = "Redis sent a reply that is not RESP or too large";
      return false;
    }
  }
  return true;
}

bool Connection::Run(Args args, RedisReply* reply, std::string* error) {
  std::string wire;
  AppendCommand(args, &wire);
  std::vector<RedisReply> replies;
  if (!Exchange(wire, 1, &replies, error)) return false;
  *reply = std::move(replies.front());
  return true;
}

bool Connection::Send(Args args, std::string* error) {
  std::string wire;
  AppendCommand(args, &wire);
  return transport_->WriteAll(wire, std::chrono::steady_clock::now() + timeouts_.command, error);
}

Transport::ReadResult Connection::Receive(RedisReply* reply, Deadline deadline, std::string* error) {
  char buf[4096];
  for (;;) {
    switch (reader_.Pop(reply)) {
      case ReplyReader::Next::kReply: return Transport::ReadResult::kData;
      case ReplyReader::Next::kBroken:
        *error = "Redis sent a reply that is not RESP";
        return Transport::ReadResult::kError;
      case ReplyReader::Next::kNeedMore: break;
    }
    size_t size = 0;
    const Transport::ReadResult r = transport_->Read(buf, sizeof buf, &size, deadline, error);
    if (r != Transport::ReadResult::kData) return r;
    if (!reader_.Feed(buf, size)) {
      *error = "Redis sent a reply that is not RESP or too large";
      return Transport::ReadResult::kError;
    }
  }
}

}  // namespace katsubushi::redis
