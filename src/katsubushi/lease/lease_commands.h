// The Redis commands of a worker id lease, shared by the server's
// RedisLeaseKeeper (a thread) and the embedded SyncRedisLease (no thread).
// Each is one round trip; `client.error()` says why when Redis did not answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "katsubushi/lease/redis_client.h"

namespace katsubushi::lease {

enum class LeaseReply {
  kOk,        // acquired / renewed / released
  kNotOurs,   // SET NX: taken; renew/release: the key is gone or someone else's
  kNoAnswer,  // no reply (client.error()) or an error reply (*error_reply)
};

// SET <ns>:id:<id> <uuid> EX|PX <expiry> NX (EX, as raus, for whole seconds).
LeaseReply SetIfAbsent(RedisClient& client, std::string_view ns, uint32_t worker_id,
                       std::string_view uuid, std::chrono::milliseconds expiry,
                       std::string* error_reply);

// The id's watermark (last issued Unix ms by any holder); 0 when none;
// nullopt when Redis did not answer.
std::optional<int64_t> ReadWatermark(RedisClient& client, std::string_view ns, uint32_t worker_id);

// PUBLISH <ns>:broadcast <uuid>:<id>, as every raus holder does each second.
bool PublishHolder(RedisClient& client, std::string_view ns, uint32_t worker_id, std::string_view uuid);

// Compare-and-set renewal recording `last_issued_ms` as the watermark.
LeaseReply Renew(RedisClient& client, std::string_view ns, uint32_t worker_id,
                 std::string_view uuid, std::chrono::milliseconds expiry, int64_t last_issued_ms,
                 std::string* error_reply);

// Compare-and-delete release recording `last_issued_ms` as the watermark.
LeaseReply Release(RedisClient& client, std::string_view ns, uint32_t worker_id,
                   std::string_view uuid, int64_t last_issued_ms, std::string* error_reply);

}  // namespace katsubushi::lease
