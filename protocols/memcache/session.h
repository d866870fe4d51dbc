// memcache::Session: the memcached protocols (text, meta, binary) as pure code
// over bytes. The socket loop feeds a connection's input in and writes what the
// session appends to `out`; nothing here knows about sockets or threads.
//
// Thread safety: a Session belongs to one connection and is called from one
// thread (or strand) at a time. The ServiceContext is shared by all sessions
// and must outlive them; GeneratorCore and Stats are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "katsubushi/generator_core.h"
#include "katsubushi/limits.h"
#include "katsubushi/stats.h"

namespace katsubushi::memcache {

struct ServiceContext {
  GeneratorCore& generator;
  Stats& stats;
  std::string_view version;  // for `version`, binary VERSION and stats
};

struct ProcessResult {
  size_t consumed = 0;  // bytes at the front of `input` fully handled; the caller drops them
  bool close = false;   // close the connection once `out` has been written
};

class Session {
 public:
  virtual ~Session() = default;
  // Handles every complete request at the front of `input`, appending all
  // replies to *out (so a pipelined batch is answered with one write). A
  // partial request stays unconsumed for the next call and is always shorter
  // than kMaxPendingBytes: past that the session answers an error and
  // discards or closes, so the caller's buffer stays bounded.
  virtual ProcessResult Process(std::string_view input, std::string* out) = 0;
};

// Text: the longest line kept while waiting for its newline. Longer lines get
// CLIENT_ERROR and are discarded up to their newline without being buffered.
inline constexpr size_t kMaxLineLength = 64 * 1024;
// Text: keys in one get, the IDs-per-request limit of every front. 1000 keys
// of 250 bytes would not fit in a line anyway; this bounds the work (and IDs)
// one short-keyed line can ask for.
inline constexpr size_t kMaxKeysPerGet = kMaxIdsPerRequest;
// memcached's key length limit.
inline constexpr size_t kMaxKeyLength = 250;
// Meta: flags after an mg key. mg has fewer than 20 distinct flags; memcached
// refuses long flag lists too. Below the tokenizer's cap, so no flag is ever
// silently dropped.
inline constexpr size_t kMaxMetaFlags = 24;
// Binary: the largest body a request header may announce. Our requests carry at
// most a key; anything above is refused before a byte of it is buffered.
inline constexpr size_t kMaxBinaryBody = 1024 * 1024;
inline constexpr size_t kBinaryHeaderSize = 24;

// The most unconsumed input a session ever leaves to its caller.
inline constexpr size_t kMaxPendingBytes = kBinaryHeaderSize + kMaxBinaryBody;
static_assert(kMaxLineLength < kMaxPendingBytes);
static_assert(kMaxKeysPerGet <= GeneratorCore::kMaxIdsPerCall);
static_assert(kMaxMetaFlags < kMaxKeysPerGet);

// Chooses the protocol from the connection's first byte, as memcached does:
// 0x80 is the binary request magic, anything else is text.
std::unique_ptr<Session> NewSession(uint8_t first_byte, const ServiceContext& context);

}  // namespace katsubushi::memcache
