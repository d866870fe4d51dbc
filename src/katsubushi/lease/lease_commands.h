// The Redis commands of a worker id lease (worker_id_lease.h uses them).
// Each is one round trip (Confirm: two with replica acknowledgement);
// `client.error()` says why when Redis did not answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "katsubushi/redis/redis_client.h"

namespace katsubushi::lease {

enum class LeaseReply {
  kOk,        // acquired / renewed / released
  kNotOurs,   // SET NX: taken; renew/release: the key is gone or someone else's
  kNoAnswer,  // no reply (client.error()), an error reply (*error_reply), or
              // (Confirm) a promise the replicas did not acknowledge
};

using redis::RedisClient;

// SET <ns>:id:<id> <uuid> EX|PX <expiry> NX (EX, as raus, for whole seconds).
LeaseReply SetIfAbsent(RedisClient& client, std::string_view ns, uint32_t worker_id,
                       std::string_view uuid, std::chrono::milliseconds expiry,
                       std::string* error_reply);

// PUBLISH <ns>:broadcast <uuid>:<id>, as every raus holder does each second.
bool PublishHolder(RedisClient& client, std::string_view ns, uint32_t worker_id, std::string_view uuid);

// Confirms the lease by compare-and-set (see kConfirmScript): extends the key
// to `expiry` and raises the watermark to `promise_ms`, the promise of the
// confirmed lease; only after kOk may the generator issue up to it, and kOk
// means the replicas acknowledged it (RedisClient::RunWrite). Right
// after SET NX it is the acquisition's first promise, and *previous (when
// not null) is the watermark before it, which a new holder must wait out.
LeaseReply Confirm(RedisClient& client, std::string_view ns, uint32_t worker_id,
                   std::string_view uuid, std::chrono::milliseconds expiry, int64_t promise_ms,
                   int64_t* previous, std::string* error_reply);

// How a release records the watermark (see kReleaseScript).
enum class FinalWatermark {
  kExact,  // set it to the value: the holder knows the previous holders' watermark
  kRaise,  // only raise it: the holder does not
};

// Compare-and-delete release recording `watermark_ms` as `mode` says.
LeaseReply Release(RedisClient& client, std::string_view ns, uint32_t worker_id,
                   std::string_view uuid, int64_t watermark_ms, FinalWatermark mode,
                   std::string* error_reply);

}  // namespace katsubushi::lease
