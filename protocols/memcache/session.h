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
  // Requests this call finished (answered, refused, or discarded up to their
  // end). The idle timeout counts from the last one, not from the last byte,
  // so a request trickled in a byte at a time cannot keep a connection open
  // (go-katsubushi's deadline is per command, too).
  size_t completed = 0;
  bool close = false;  // close the connection once `out` has been written
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
  // Heap bytes the session keeps between calls (scratch space reused by
  // requests); a large request's share is given back when it is done.
  virtual size_t retained_bytes() const = 0;
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
// Binary GET/GETQ/GETK/GETKQ: the body is the key alone (a get has no extras),
// so a header announcing more is refused as soon as it arrives; a stalled get
// holds a few hundred bytes, not kMaxBinaryBody.
inline constexpr size_t kMaxBinaryGetBody = kMaxKeyLength;
inline constexpr size_t kBinaryHeaderSize = 24;

// The most unconsumed input a session ever leaves to its caller.
inline constexpr size_t kMaxPendingBytes = kBinaryHeaderSize + kMaxBinaryBody;
static_assert(kMaxLineLength < kMaxPendingBytes);
static_assert(kMaxKeysPerGet <= GeneratorCore::kMaxIdsPerCall);
static_assert(kMaxMetaFlags < kMaxKeysPerGet);
static_assert(kMaxBinaryGetBody < kMaxBinaryBody);

// Per-connection memory (see connection_buffers.h). An idle connection holds
// kInitialInputBytes of input; a buffer that a large request or a burst grew
// past kRetainedBufferBytes is given back as soon as it is drained, so a
// connection that once sent a megabyte costs no more than an idle one after.
inline constexpr size_t kInitialInputBytes = 2 * 1024;
inline constexpr size_t kMinReadRoom = 1024;  // smallest read offered to the socket
inline constexpr size_t kRetainedBufferBytes = 64 * 1024;
// The input buffer never grows past this: a session leaves less than
// kMaxPendingBytes unconsumed, so there is always room for one more read.
inline constexpr size_t kMaxInputBytes = kMaxPendingBytes + 64 * 1024;
// Text: token and ID scratch kept between requests. Gets of up to 255 keys
// fit (allocation-free once warm); a larger get's scratch is released after
// it (1000 keys would otherwise pin ~24 KiB per connection).
inline constexpr size_t kRetainedScratchBytes = 8 * 1024;
static_assert(kInitialInputBytes >= 2 * kMinReadRoom);

// Chooses the protocol from the connection's first byte, as memcached does:
// 0x80 is the binary request magic, anything else is text.
std::unique_ptr<Session> NewSession(uint8_t first_byte, const ServiceContext& context);

}  // namespace katsubushi::memcache
