#include "katsubushi/lease/raus_protocol.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace katsubushi::lease {

// Built by appending: GCC 12 warns (-Wrestrict, falsely) on chains of
// `"literal" + std::string` temporaries.
std::string LockKey(std::string_view ns, uint32_t worker_id) {
  std::string key(ns);
  key.append(":id:").append(std::to_string(worker_id));
  return key;
}

std::string WatermarkKey(std::string_view ns, uint32_t worker_id) {
  std::string key("{");
  key.append(LockKey(ns, worker_id)).append("}:watermark");
  return key;
}

std::string BroadcastChannel(std::string_view ns) { return std::string(ns) + ":broadcast"; }

std::string BroadcastPayload(std::string_view uuid, uint32_t worker_id) {
  return std::string(uuid) + ":" + std::to_string(worker_id);
}

std::optional<Broadcast> ParseBroadcast(std::string_view payload) {
  const size_t colon = payload.find(':');
  if (colon == std::string_view::npos || payload.find(':', colon + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view id = payload.substr(colon + 1);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value, 10);
  if (id.empty() || ec != std::errc() || end != id.data() + id.size() || value > UINT32_MAX) {
    return std::nullopt;
  }
  return Broadcast{std::string(payload.substr(0, colon)), static_cast<uint32_t>(value)};
}

namespace {

// Fills `out` from the kernel's CSPRNG. getrandom() blocks only until the
// pool is first initialised at boot; a short read or EINTR is retried.
void OsRandomBytes(uint8_t* out, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = getrandom(out + done, size - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // No getrandom (a pre-3.17 kernel or a seccomp filter): random_device
      // reads the same kernel source through /dev/urandom.
      std::random_device device;
      for (; done < size; ++done) out[done] = static_cast<uint8_t>(device());
    }
  }
}

}  // namespace

std::mt19937_64 SeededRng() {
  uint32_t seed[8];
  OsRandomBytes(reinterpret_cast<uint8_t*>(seed), sizeof seed);
  std::seed_seq seq(std::begin(seed), std::end(seed));
  return std::mt19937_64(seq);
}

std::string NewUuid() {
  uint8_t bytes[16];
  OsRandomBytes(bytes, sizeof bytes);
  bytes[6] = static_cast<uint8_t>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<uint8_t>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0x0f]);
  }
  return out;
}

std::vector<uint32_t> Candidates(uint32_t min_id, uint32_t max_id, const std::set<uint32_t>& used) {
  std::vector<uint32_t> out;
  for (uint64_t id = min_id; id <= max_id && out.size() < kMaxCandidates; ++id) {
    if (!used.contains(static_cast<uint32_t>(id))) out.push_back(static_cast<uint32_t>(id));
  }
  return out;
}

int64_t LeaseValidUntilMicros(int64_t sent_micros, std::chrono::milliseconds lease_expiry) {
  const int64_t expiry = lease_expiry.count() * 1000;
  const int64_t margin = std::max<int64_t>(1'000'000, expiry / 20);
  return sent_micros + expiry * 99 / 100 - 2'000 - margin;
}

std::chrono::milliseconds RenewIntervalFor(std::chrono::milliseconds lease_expiry) {
  return std::min(kRenewInterval, lease_expiry / 6);
}

}  // namespace katsubushi::lease
