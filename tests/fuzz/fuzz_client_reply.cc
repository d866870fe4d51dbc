// libFuzzer target for the client's reply parsers (memcached text and HTTP).
//
// Input: byte 0 picks the protocol (bit 0) and, with byte 1, how many IDs
// were asked for (1..1000); the rest is the reply. Invariants: a reply that
// parses as done yields exactly n IDs, each nonzero, strictly increasing and
// written in the reply in decimal (never invented); it consumed no more than
// the input; one byte less of it is never done (never a partial reply); and
// the parse is the same when the input is cut right after the reply.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/client/reply.h"

using katsubushi::client::ParseHttpReply;
using katsubushi::client::ParseMemcacheReply;
using katsubushi::client::ParseResult;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool http = (data[0] & 1) != 0;
  const size_t n = 1 + ((static_cast<size_t>(data[0] >> 1) << 8) | data[1]) % 1000;
  const std::string_view reply(reinterpret_cast<const char*>(data + 2), size - 2);
  auto parse = [&](std::string_view input, std::vector<uint64_t>& ids) {
    return http ? ParseHttpReply(input, ids) : ParseMemcacheReply(input, ids);
  };
  std::vector<uint64_t> ids(n);
  const ParseResult result = parse(reply, ids);
  if (result.kind != ParseResult::Kind::kDone) return 0;
  if (result.consumed > reply.size()) std::abort();
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] == 0) std::abort();
    if (i > 0 && ids[i] <= ids[i - 1]) std::abort();
    if (reply.substr(0, result.consumed).find(std::to_string(ids[i])) == std::string_view::npos) std::abort();
  }
  std::vector<uint64_t> again(n);
  const ParseResult cut = parse(reply.substr(0, result.consumed), again);
  if (cut.kind != ParseResult::Kind::kDone || cut.consumed != result.consumed || again != ids) std::abort();
  std::vector<uint64_t> shorter(n);
  if (parse(reply.substr(0, result.consumed - 1), shorter).kind == ParseResult::Kind::kDone) std::abort();
  return 0;
}
