#include "katsubushi/lease/lease_commands.h"

#include <cstdlib>

#include "katsubushi/lease/raus_protocol.h"

namespace katsubushi::lease {
namespace {

const std::string& WatermarkTtlMillis() {
  static const std::string ttl = std::to_string(std::chrono::milliseconds(kWatermarkTtl).count());
  return ttl;
}

using redis::RedisReply;

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
  const std::string key = LockKey(ns, worker_id);
  if (!client.Run(key, {"SET", key, uuid, seconds ? "EX" : "PX", amount, "NX"}, &reply)) {
    return LeaseReply::kNoAnswer;
  }
  if (reply.is_error()) {
    *error_reply = reply.str;
    return LeaseReply::kNoAnswer;
  }
  return reply.type == RedisReply::Type::kNil ? LeaseReply::kNotOurs : LeaseReply::kOk;
}

bool PublishHolder(RedisClient& client, std::string_view ns, uint32_t worker_id, std::string_view uuid) {
  RedisReply reply;
  return client.Run({}, {"PUBLISH", BroadcastChannel(ns), BroadcastPayload(uuid, worker_id)}, &reply) &&
         !reply.is_error();
}

LeaseReply Confirm(RedisClient& client, std::string_view ns, uint32_t worker_id,
                   std::string_view uuid, std::chrono::milliseconds expiry, int64_t promise_ms,
                   int64_t* previous, std::string* error_reply) {
  RedisReply reply;
  const std::string key = LockKey(ns, worker_id);
  const RedisClient::Write write =
      client.RunWrite(key,
                      {"EVAL", kConfirmScript, "2", key, WatermarkKey(ns, worker_id), uuid,
                       std::to_string(expiry.count()), std::to_string(promise_ms), WatermarkTtlMillis()},
                      &reply);
  if (write == RedisClient::Write::kNoAnswer) return LeaseReply::kNoAnswer;
  if (reply.is_error() || reply.type != RedisReply::Type::kInteger) {
    *error_reply = reply.is_error() ? reply.str : "unexpected reply to the lease confirmation";
    return LeaseReply::kNoAnswer;
  }
  if (reply.integer < 0) return LeaseReply::kNotOurs;
  if (write == RedisClient::Write::kNotReplicated) {
    *error_reply = client.error();
    return LeaseReply::kNoAnswer;
  }
  if (previous != nullptr) *previous = reply.integer;
  return LeaseReply::kOk;
}

LeaseReply Release(RedisClient& client, std::string_view ns, uint32_t worker_id,
                   std::string_view uuid, int64_t watermark_ms, FinalWatermark mode,
                   std::string* error_reply) {
  RedisReply reply;
  const std::string key = LockKey(ns, worker_id);
  const bool answered = client.Run(
      key, {"EVAL", kReleaseScript, "2", key, WatermarkKey(ns, worker_id), uuid,
       mode == FinalWatermark::kExact ? "exact" : "raise", std::to_string(watermark_ms),
       WatermarkTtlMillis()},
      &reply);
  return ScriptReply(answered, reply, error_reply);
}

}  // namespace katsubushi::lease
