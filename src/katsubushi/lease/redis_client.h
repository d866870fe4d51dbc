// RedisClient: a small blocking Redis client over hiredis for the lease keeper:
// one command at a time, bounded by timeouts, reconnecting after any I/O error
// and following Redis Cluster redirects (MOVED/ASK) so that a lease key is
// always sent to the node that owns its slot.
//
// Not thread-safe: one owner thread (the lease keeper).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/lease/redis_url.h"

struct redisContext;

namespace katsubushi::lease {

struct RedisReply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
};

struct RedisTimeouts {
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds command{1000};
};

class RedisClient {
 public:
  // Redirects followed for one command before giving up (a cluster resharding).
  static constexpr int kMaxRedirects = 5;

  RedisClient(RedisUrl url, RedisTimeouts timeouts);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command. False when no reply came (cannot connect, timeout,
  // connection lost; the connection is dropped and the next call reconnects);
  // then error() says why. A Redis error reply is a true return with an
  // kError reply.
  bool Run(std::initializer_list<std::string_view> args, RedisReply* reply);

  // SUBSCRIBEs to `channel` on a connection of its own and calls `on_message`
  // with each message payload until `duration` has passed or `keep_going`
  // returns false (asked about every kListenSlice). False when the
  // subscription could not be made.
  static constexpr std::chrono::milliseconds kListenSlice{100};
  bool Listen(std::string_view channel, std::chrono::milliseconds duration,
              const std::function<void(std::string_view)>& on_message,
              const std::function<bool()>& keep_going);

  void Disconnect();
  const std::string& error() const { return error_; }

 private:
  using ContextPtr = std::unique_ptr<redisContext, void (*)(redisContext*)>;

  // Connects to host:port, then AUTH and SELECT as the URL says.
  ContextPtr Open(const std::string& host, uint16_t port);
  bool RunOn(redisContext* context, std::initializer_list<std::string_view> args,
             RedisReply* reply);

  const RedisUrl url_;
  const RedisTimeouts timeouts_;
  ContextPtr context_;
  // Where context_ points: the URL's node, or the node a MOVED sent us to.
  std::string host_;
  uint16_t port_;
  std::string error_;
};

}  // namespace katsubushi::lease
