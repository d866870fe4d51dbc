// The worker id lease scheme of fujiwara/raus (used by go-katsubushi): key
// names, the broadcast payload, candidate choice, and the scripts and deadline
// rule we add on top. Pure functions and constants; thread-safe.
//
// What is shared with Go instances, byte for byte: the lock key
// "<ns>:id:<id>" holding the owner's uuid, SET NX EX at acquisition, the
// channel "<ns>:broadcast" and its "<uuid>:<id>" messages published every
// second. What is ours: renewal and release by compare-and-set scripts (Go's
// GETSET would re-create an expired key and clobber its new owner), the
// self-fencing deadline, and the restart watermark kept beside the lock key.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace katsubushi::lease {

// raus's MaxCandidate: acquisition picks at random among this many free ids.
inline constexpr size_t kMaxCandidates = 10;
// How long a new instance listens to the broadcast before choosing.
inline constexpr std::chrono::milliseconds kDiscoveryTime{3000};
// How often the holder publishes its id and renews the key.
inline constexpr std::chrono::milliseconds kRenewInterval{1000};
// The key's expiry (the contract's SET NX EX 600).
inline constexpr std::chrono::milliseconds kDefaultLeaseExpiry{600'000};
// How long the watermark outlives its last update.
inline constexpr std::chrono::hours kWatermarkTtl{24 * 7};

std::string LockKey(std::string_view ns, uint32_t worker_id);
// "{<ns>:id:<id>}:watermark": the braces put it in the lock key's cluster slot
// (a key's slot is the hash of its {tag}), so one script can touch both.
std::string WatermarkKey(std::string_view ns, uint32_t worker_id);
std::string BroadcastChannel(std::string_view ns);

std::string BroadcastPayload(std::string_view uuid, uint32_t worker_id);
struct Broadcast {
  std::string uuid;
  uint32_t worker_id = 0;
};
// raus's parsePayload: exactly one ':' and a decimal id; nullopt otherwise.
std::optional<Broadcast> ParseBroadcast(std::string_view payload);

// A random (version 4) UUID in its text form, as Go's uuid.NewRandom().String().
// Its 122 random bits come from the kernel (getrandom), never from a seeded
// PRNG: the uuid is what tells two holders apart in the compare-and-set
// scripts, so two processes must not be able to draw the same one (same
// seed, or a PRNG state copied by fork()).
std::string NewUuid();

// A PRNG seeded from the kernel, for choices that need no secrecy (which free
// id to try, retry jitter).
std::mt19937_64 SeededRng();

// Up to kMaxCandidates ids of [min_id, max_id] not in `used`, lowest first
// (raus v0.1.0's order).
std::vector<uint32_t> Candidates(uint32_t min_id, uint32_t max_id, const std::set<uint32_t>& used);

// The self-fencing deadline: an instance that sent its last successful SET or
// renewal at `sent_micros` (its own clock) issues nothing from the returned
// time on. Below the key's expiry by 1% (clock rate error), 2 ms, and a
// margin of max(1 s, 5% of the expiry), so that we stop before Redis could
// hand the id to anybody else.
int64_t LeaseValidUntilMicros(int64_t sent_micros, std::chrono::milliseconds lease_expiry);

// The renewal interval for a lease expiry: raus's 1 s, or less for the short
// expiries tests use, so that two renewals fit before the deadline.
std::chrono::milliseconds RenewIntervalFor(std::chrono::milliseconds lease_expiry);

// The watermark of a worker id is a promise: the latest Unix ms that any ID
// issued under it by any holder can carry. A holder raises it to
// LastMillisBefore(deadline) *before* its generator may issue up to that
// deadline, so a holder cut off from Redis (partitioned, frozen) never issues
// past what Redis already records, and a successor that waits until its own
// clock passes the watermark never re-issues its IDs, whatever the two clocks
// say. Only a clean release lowers it, to the exact last ms issued.

// Confirmation, at acquisition (right after SET NX) and at every renewal:
// when the lock key is ours, extends it and raises the watermark to the
// promise of the confirmed lease, returning the watermark before it (what
// the previous holders may have issued up to; 0 when none); -1 when the key
// is not ours. KEYS[1] lock key, KEYS[2] watermark key; ARGV[1] our uuid,
// ARGV[2] expiry ms, ARGV[3] promise (Unix ms), ARGV[4] watermark ttl ms.
inline constexpr std::string_view kConfirmScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local w = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if tonumber(ARGV[3]) > w then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
else
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return w
)lua";

// Release: deletes the lock key when it is ours, recording the final
// watermark first. KEYS as above; ARGV[1] our uuid, ARGV[2] "exact" or
// "raise", ARGV[3] Unix ms, ARGV[4] watermark ttl ms. "exact" replaces our
// own promises with the exact last ms issued (only a holder that knows the
// previous holders' watermark may, since it must not go below it); "raise"
// only raises it. Returns 1 when the key was ours (and is now deleted), 0
// when it was not.
inline constexpr std::string_view kReleaseScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local w = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if ARGV[2] == 'exact' or tonumber(ARGV[3]) > w then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
end
redis.call('DEL', KEYS[1])
return 1
)lua";

}  // namespace katsubushi::lease
