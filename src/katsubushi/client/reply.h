// The client's side of the wire: the request bytes for n IDs and a strict
// parser of each kind of reply. Pure functions over bytes, no I/O, so every
// split of a reply can be tested and fuzzed.
//
// Strictness is the point: a Client hands out only IDs that arrived in a
// reply framed exactly as katsubushi servers (this one and go-katsubushi)
// frame it, each one canonical decimal (no sign, no leading zero, no
// overflow), nonzero, and, within one reply, strictly increasing. Anything
// else is an error for the whole reply: never a partial or invented ID.
//
// Thread safety: stateless functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "katsubushi/client/server_address.h"
#include "katsubushi/limits.h"
#include "katsubushi/status.h"

namespace katsubushi::client {

// Limits, in one place. The most IDs one request may ask for is the servers'
// own, kMaxIdsPerRequest (limits.h).
// A reply longer than this is refused before it is read further: 1000 IDs in
// memcached framing take about 40 KB, over chunked HTTP about 21 KB.
inline constexpr size_t kMaxReplyBytes = 128 * 1024;
// HTTP status line and headers.
inline constexpr size_t kMaxHttpHeaderBytes = 16 * 1024;
// One memcached reply line ("VALUE 999 0 20", "SERVER_ERROR ...").
inline constexpr size_t kMaxMemcacheLineBytes = 1024;

// Why a reply was refused. Statuses with static messages, as Status requires.
inline constexpr Status kServerError{StatusCode::kUnavailable, "server answered with an error"};
inline constexpr Status kMalformedReply{StatusCode::kUnavailable,
                                        "malformed reply (framing is not a katsubushi reply)"};
inline constexpr Status kBadIdText{StatusCode::kUnavailable, "reply holds an ID that is not canonical decimal"};
inline constexpr Status kZeroId{StatusCode::kUnavailable, "reply holds the ID 0"};
inline constexpr Status kIdsNotIncreasing{StatusCode::kUnavailable, "IDs in the reply are not increasing"};
inline constexpr Status kWrongIdCount{StatusCode::kUnavailable, "reply holds the wrong number of IDs"};
inline constexpr Status kReplyTooLarge{StatusCode::kUnavailable, "reply is larger than any katsubushi reply"};
inline constexpr Status kNotHttp{StatusCode::kUnavailable,
                                 "not an HTTP reply (another protocol on that port?)"};
inline constexpr Status kHttpStatusNotOk{StatusCode::kUnavailable, "HTTP status is not 200"};
inline constexpr Status kHttpUnsupported{StatusCode::kUnavailable,
                                         "HTTP reply framing is not supported (no length, or both lengths)"};

// The memcached key of the i-th of n IDs: "id" alone, "0".."n-1" for several
// (as go-katsubushi's client). The parser checks each key is echoed.
std::string MemcacheKey(size_t i, size_t n);

// Appends "get <keys>\r\n". Precondition: 1 <= n <= kMaxIdsPerRequest.
void AppendMemcacheRequest(size_t n, std::string* out);
// Appends "GET <prefix>id" or "<prefix>ids?n=N" as an HTTP/1.1 keep-alive request.
void AppendHttpRequest(const ServerAddress& server, size_t n, std::string* out);

struct ParseResult {
  enum class Kind { kNeedMore, kDone, kError };
  Kind kind = Kind::kNeedMore;
  Status error;           // kError
  size_t consumed = 0;    // kDone: bytes of the reply
  bool keep_alive = true; // kDone: the connection may carry another request
};

// Parses a reply to AppendMemcacheRequest(out.size()) from the start of
// `input`, writing out.size() IDs into `out` (only meaningful on kDone).
ParseResult ParseMemcacheReply(std::string_view input, std::span<uint64_t> out);
// The same for a reply to AppendHttpRequest(server, out.size()). Fails with
// kNotHttp at the first byte that cannot start "HTTP/1.", so that a memcached
// port given as an http:// address fails at once, not at the timeout.
ParseResult ParseHttpReply(std::string_view input, std::span<uint64_t> out);

// One ID in canonical decimal, nonzero.
Result<uint64_t> ParseId(std::string_view text);

}  // namespace katsubushi::client
