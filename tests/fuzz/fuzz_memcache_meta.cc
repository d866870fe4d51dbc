// libFuzzer target for the meta commands (mg, mn) of the text session.
//
// The input is turned into meta requests: each '\n'-separated piece becomes
// `mg <piece>\r\n` (a piece starting with '!' becomes `mn\r\n`), so the fuzzer
// spends its time on keys and flags rather than on finding the command word.
//
// Invariants, beyond "no crash" and the shared framing ones:
//   * exactly one reply per request, in order, and `MN` for each `mn`; every
//     request reported completed;
//   * a request is refused (CLIENT_ERROR with the reason below) exactly when
//     it has no key, a key over kMaxKeyLength, more than kMaxMetaFlags flags
//     or a flag memcached's mg does not have; otherwise it gets `VA <n>` if it
//     asked for the value (then n digits of an ID) or `HD`;
//   * the reply echoes, in request order, k<key>, the O<opaque> token as sent,
//     s<n>, f0 and t-1 for the flags that ask for them, and nothing else;
//   * IDs are this worker's and strictly increasing.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "memcache_harness.h"

namespace {

using katsubushi::memcache::kMaxKeyLength;
using katsubushi::fuzz::TakeLine;
using katsubushi::memcache::kMaxMetaFlags;

std::vector<std::string_view> Tokens(std::string_view s) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    const size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) tokens.push_back(s.substr(start, i - start));
  }
  return tokens;
}

std::string_view Refusal(const std::vector<std::string_view>& tokens) {
  if (tokens.empty()) return "CLIENT_ERROR bad command line format";
  if (tokens[0].size() > kMaxKeyLength) return "CLIENT_ERROR key too long";
  if (tokens.size() - 1 > kMaxMetaFlags) return "CLIENT_ERROR too many flags";
  for (size_t i = 1; i < tokens.size(); ++i) {
    if (std::string_view("vkOqsftbN").find(tokens[i][0]) == std::string_view::npos) {
      return "CLIENT_ERROR invalid flag";
    }
  }
  return {};
}

void CheckMetaGetReply(std::string_view piece, std::string_view* replies, uint64_t* last_id) {
  const std::vector<std::string_view> tokens = Tokens(piece);
  const std::string_view header = TakeLine(replies);
  if (const std::string_view refusal = Refusal(tokens); !refusal.empty()) {
    if (header != refusal) std::abort();
    return;
  }
  bool value = false;
  for (size_t i = 1; i < tokens.size(); ++i) value |= tokens[i][0] == 'v';
  const std::vector<std::string_view> got = Tokens(header);
  if (got.empty() || got[0] != (value ? "VA" : "HD")) std::abort();
  size_t at = 1;
  std::string_view length;
  if (value) {
    if (got.size() < 2) std::abort();
    length = got[at++];
  }
  auto next = [&]() {
    if (at >= got.size()) std::abort();
    return got[at++];
  };
  std::string_view size_echo;
  for (size_t i = 1; i < tokens.size(); ++i) {
    switch (tokens[i][0]) {
      case 'k': if (next() != std::string("k").append(tokens[0])) std::abort(); break;
      case 'O': if (next() != tokens[i]) std::abort(); break;
      case 'f': if (next() != "f0") std::abort(); break;
      case 't': if (next() != "t-1") std::abort(); break;
      case 's': {
        const std::string_view echo = next();
        if (!echo.starts_with('s') || echo.size() < 2 || echo.size() > 3) std::abort();
        size_echo = echo.substr(1);
        break;
      }
      default: break;  // v, q, b, N: nothing echoed
    }
  }
  if (at != got.size()) std::abort();  // nothing beyond what was asked for
  if (value) {
    const std::string_view digits = TakeLine(replies);
    if (length != std::to_string(digits.size())) std::abort();
    katsubushi::fuzz::CheckIssuedId(digits, last_id);
  }
  if (!size_echo.empty() && value && size_echo != length) std::abort();
  if (!size_echo.empty() && size_echo.find_first_not_of("0123456789") != std::string_view::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const unsigned seed = data[0];
  const std::string_view raw(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string_view> pieces;
  for (size_t at = 0; at <= raw.size();) {
    const size_t end = std::min(raw.find('\n', at), raw.size());
    pieces.push_back(raw.substr(at, end - at));
    at = end + 1;
  }
  std::string input;
  for (const std::string_view piece : pieces) {
    // A line that long is the text target's business (CLIENT_ERROR line too long).
    if (piece.size() + 8 > katsubushi::memcache::kMaxLineLength) return 0;
    if (piece.starts_with('!')) {
      input.append("mn\r\n");
    } else {
      input.append("mg ").append(piece).append("\r\n");
    }
  }

  const katsubushi::fuzz::Outcome outcome = katsubushi::fuzz::FeedTwoWaysAndCompare(input, seed);
  if (outcome.closed || outcome.consumed != input.size()) std::abort();
  if (outcome.completed != pieces.size()) std::abort();
  std::string_view replies = outcome.out;
  uint64_t last_id = 0;
  for (const std::string_view piece : pieces) {
    if (piece.starts_with('!')) {
      if (TakeLine(&replies) != "MN") std::abort();
    } else {
      CheckMetaGetReply(piece, &replies, &last_id);
    }
  }
  if (!replies.empty()) std::abort();
  return 0;
}
