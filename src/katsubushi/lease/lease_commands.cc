#include "katsubushi/lease/lease_commands.h"

#include <cstdlib>

#include "katsubushi/lease/raus_protocol.h"

namespace katsubushi::lease {
namespace {

const std::string& WatermarkTtlMillis() {
  static const std::string ttl = std::to_string(std::chrono::milliseconds(kWatermarkTtl).count());
  return ttl;
}

// A script's 1/0 reply as a LeaseReply.
LeaseReply ScriptReply(bool answered, const RedisReply& reply, std::string* error_reply) {
  if (!answered) return LeaseReply::kNoAnswer;
  if (reply.is_error()) {
    *error_reply = reply.str;
    return LeaseReply::kNoAnswer;
  }
  return reply.type == RedisReply::Type::kInteger && reply.integer == 1 ? LeaseReply::kOk
                                                                         : LeaseReply::kNotOurs;
}

}  // namespace

LeaseReply SetIfAbsent(RedisClient& client, std::string_view ns, uint32_t worker_id,
                       std::string_view uuid, std::chrono::milliseconds expiry,
                       std::string* error_reply) {
  const bool seconds = expiry.count() % 1000 == 0;
  const std::string amount = std::to_string(seconds ? expiry.count() / 1000 : expiry.count());
  RedisReply reply;
  if (!client.Run({"SET", LockKey(ns, worker_id), uuid, seconds ? "EX" : "PX", amount, "NX"},
                  &reply)) {
    return LeaseReply::kNoAnswer;
  }
  if (reply.is_error()) {
    *error_reply = reply.str;
    return LeaseReply::kNoAnswer;
  }
  return reply.type == RedisReply::Type::kNil ? LeaseReply::kNotOurs : LeaseReply::kOk;
}

std::optional<int64_t> ReadWatermark(RedisClient& client, std::string_view ns, uint32_t worker_id) {
  RedisReply reply;
  if (!client.Run({"GET", WatermarkKey(ns, worker_id)}, &reply) || reply.is_error()) {
    return std::nullopt;
  }
  if (reply.type != RedisReply::Type::kString) return 0;
  return std::strtoll(reply.str.c_str(), nullptr, 10);
}

bool PublishHolder(RedisClient& client, std::string_view ns, uint32_t worker_id, std::string_view uuid) {
  RedisReply reply;
  return client.Run({"PUBLISH", BroadcastChannel(ns), BroadcastPayload(uuid, worker_id)}, &reply) &&
         !reply.is_error();
}

LeaseReply Renew(RedisClient& client, std::string_view ns, uint32_t worker_id,
                 std::string_view uuid, std::chrono::milliseconds expiry, int64_t last_issued_ms,
                 std::string* error_reply) {
  RedisReply reply;
  const bool answered = client.Run(
      {"EVAL", kRenewScript, "2", LockKey(ns, worker_id), WatermarkKey(ns, worker_id), uuid,
       std::to_string(expiry.count()), std::to_string(last_issued_ms), WatermarkTtlMillis()},
      &reply);
  return ScriptReply(answered, reply, error_reply);
}

LeaseReply Release(RedisClient& client, std::string_view ns, uint32_t worker_id,
                   std::string_view uuid, int64_t last_issued_ms, std::string* error_reply) {
  RedisReply reply;
  const bool answered = client.Run(
      {"EVAL", kReleaseScript, "2", LockKey(ns, worker_id), WatermarkKey(ns, worker_id), uuid, "0",
       std::to_string(last_issued_ms), WatermarkTtlMillis()},
      &reply);
  return ScriptReply(answered, reply, error_reply);
}

}  // namespace katsubushi::lease
