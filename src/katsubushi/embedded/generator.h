// Generator: the ID generator for programs that embed katsubushi instead
// of calling a server — a static worker id, or one leased through Redis with
// no background thread (SyncRedisLease), safe inside AWS Lambda.
//
//   auto gen = katsubushi::Generator::Open(config);   // no network I/O
//   if (!gen.ok()) ...;
//   (*gen)->InvocationBegin();            // at the top of each Lambda event
//   katsubushi::Result<uint64_t> id = (*gen)->Next();
//
// Errors are values (Status / Result), never exceptions. A process that
// forks gets an error from the child's copy (kForked) instead of sharing the
// parent's worker id; the child must Open() its own.
//
// Thread safety: every method may be called concurrently, except Close()
// and destruction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "katsubushi/generator_core.h"
#include "katsubushi/id_layout.h"
#include "katsubushi/lease/lease_log.h"
#include "katsubushi/status.h"

namespace katsubushi {

inline constexpr Status kForked{StatusCode::kFailedPrecondition,
                                "the process forked: this generator belongs to the parent"};
inline constexpr Status kGeneratorClosed{StatusCode::kFailedPrecondition, "the generator is closed"};
inline constexpr Status kBadGeneratorConfig{StatusCode::kInvalidArgument,
                                            "give a worker id or a Redis URL, not both"};

struct GeneratorConfig {
  bool js_safe_id = false;
  // A static worker id (1..1023, or 1..63 with js_safe_id), or 0 to lease one.
  uint32_t worker_id = 0;
  // With worker_id 0: a Redis URL as the server's -redis (redis://,
  // rediss://, rediscluster://, redis-sentinel://, ...).
  std::string redis_url;
  // For a TLS URL: the CA bundle (empty: the system's), a client certificate
  // and key (mutual TLS), and the explicit opt-out of verification.
  std::string redis_tls_ca_file;
  std::string redis_tls_cert_file;
  std::string redis_tls_key_file;
  bool redis_tls_skip_verify = false;
  // Lease writes count once every connected replica (and at least this many)
  // acknowledged them within redis_replica_timeout; a timeout of 0 does not
  // wait for replicas (see redis/redis_client.h).
  uint32_t redis_min_replicas = 0;
  std::chrono::milliseconds redis_replica_timeout{500};
  uint32_t min_worker_id = 0;  // 0: 1
  uint32_t max_worker_id = 0;  // 0: the layout's largest
  std::chrono::milliseconds lease_ttl{60'000};
  // A lease is re-validated before the first ID after this much idle time
  // (a frozen Lambda environment being thawed).
  std::chrono::milliseconds revalidate_after_idle{100};
  std::chrono::milliseconds max_clock_rollback = GeneratorOptions::kDefaultMaxClockRollback;
  lease::LogFunction log;
};

class Generator {
 public:
  static Result<std::unique_ptr<Generator>> Open(const GeneratorConfig& config);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  Result<uint64_t> Next();
  // Fills `out` with consecutive IDs (1..GeneratorCore::kMaxIdsPerCall of
  // them), all or none.
  Status NextN(std::span<uint64_t> out);
  // The same, returning the n IDs in a new vector.
  Result<std::vector<uint64_t>> NextN(size_t n);
  IdParts Decode(uint64_t id) const { return generator_->layout().Decode(id); }

  // The start of a Lambda invocation: confirms a held lease now (one round
  // trip to Redis), so the event's first ID is issued under a lease known to
  // be ours. Without a lease yet, nothing (it is acquired at the first ID).
  Status InvocationBegin();

  // Acquires a worker id now if none is held (for a health check that should
  // not wait for the first ID); the reason when none can be had.
  Status EnsureWorkerId();

  // The worker id IDs are issued under; an error while none is held.
  Result<uint32_t> WorkerId() const;

  // Stops issuing and gives a leased id back (compare-and-delete).
  Status Close();

  // The core generator (for the HTTP router of the server's Lambda mode).
  GeneratorCore& core() { return *generator_; }
  bool leased() const;

 private:
  class Lease;
  Generator() = default;
  bool forked() const;

  std::unique_ptr<Lease> lease_;  // declared first: the generator points to it
  std::unique_ptr<GeneratorCore> generator_;
  uint64_t fork_generation_ = 0;
  std::atomic<bool> closed_{false};
};

}  // namespace katsubushi
