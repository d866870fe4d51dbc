#include "memcache/text_session.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "katsubushi/issuer.h"
#include "memcache/stats_reply.h"

namespace katsubushi::memcache {
namespace {

constexpr std::string_view kError = "ERROR\r\n";

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// Splits on spaces and tabs into *tokens, stopping after max_tokens + 1 so a
// hostile line cannot make the vector grow past the limit we check for.
void Tokenize(std::string_view line, size_t max_tokens, std::vector<std::string_view>* tokens) {
  tokens->clear();
  size_t i = 0;
  while (i < line.size() && tokens->size() <= max_tokens) {
    while (i < line.size() && IsSpace(line[i])) ++i;
    const size_t start = i;
    while (i < line.size() && !IsSpace(line[i])) ++i;
    if (i > start) tokens->push_back(line.substr(start, i - start));
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  return a.size() == lower.size() &&
         std::equal(a.begin(), a.end(), lower.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? static_cast<char>(x - 'A' + 'a') : x) == y;
         });
}

void AppendServerError(const Status& status, std::string* out) {
  out->append("SERVER_ERROR ");
  out->append(status.message());
  out->append("\r\n");
}

// Enough tokens for the command word plus kMaxKeysPerGet keys.
constexpr size_t kMaxTokens = kMaxKeysPerGet + 1;

}  // namespace

// tokens_ and ids_ grow to what the connection's requests need and keep that
// capacity up to kRetainedScratchBytes; reserving kMaxTokens up front would cost
// 16 KiB per idle connection.
TextSession::TextSession(const ServiceContext& context) : context_(context) {}

ProcessResult TextSession::Process(std::string_view input, std::string* out) {
  ProcessResult result;
  while (result.consumed < input.size()) {
    const std::string_view rest = input.substr(result.consumed);
    const size_t newline = rest.find('\n');
    if (discarding_) {
      if (newline == std::string_view::npos) {
        result.consumed = input.size();
        break;
      }
      discarding_ = false;
      result.consumed += newline + 1;
      ++result.completed;
      continue;
    }
    if (newline == std::string_view::npos) {
      if (rest.size() > kMaxLineLength) {
        // memcached closes here; we answer, drop the line, and keep going.
        out->append("CLIENT_ERROR line too long\r\n");
        discarding_ = true;
        result.consumed = input.size();
      }
      break;
    }
    std::string_view line = rest.substr(0, newline);
    result.consumed += newline + 1;
    ++result.completed;
    if (line.size() > kMaxLineLength) {
      out->append("CLIENT_ERROR line too long\r\n");
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!HandleLine(line, out)) {
      result.close = true;
      break;
    }
  }
  ReleaseLargeScratch();
  return result;
}

// Once per Process call, not per line: a pipelined batch of large gets
// allocates once.
void TextSession::ReleaseLargeScratch() {
  if (retained_bytes() <= kRetainedScratchBytes) return;
  std::vector<std::string_view>().swap(tokens_);
  std::vector<uint64_t>().swap(ids_);
}

size_t TextSession::retained_bytes() const {
  return tokens_.capacity() * sizeof(std::string_view) + ids_.capacity() * sizeof(uint64_t);
}

bool TextSession::HandleLine(std::string_view line, std::string* out) {
  Tokenize(line, kMaxTokens, &tokens_);
  if (tokens_.empty()) {
    out->append(kError);
    return true;
  }
  const std::string_view command = tokens_[0];
  if (EqualsIgnoreCase(command, "get") || EqualsIgnoreCase(command, "gets")) {
    HandleGet(out);
  } else if (EqualsIgnoreCase(command, "mg")) {
    HandleMetaGet(out);
  } else if (EqualsIgnoreCase(command, "mn")) {
    out->append("MN\r\n");
  } else if (EqualsIgnoreCase(command, "stats")) {
    HandleStats(out);
  } else if (EqualsIgnoreCase(command, "version")) {
    out->append("VERSION ");
    out->append(context_.version);
    out->append("\r\n");
  } else if (EqualsIgnoreCase(command, "quit")) {
    return false;
  } else {
    out->append(kError);
  }
  return true;
}

void TextSession::HandleGet(std::string* out) {
  Issuer issuer(context_.generator, context_.stats, FrontLabel::kMemcacheText);
  const size_t keys = tokens_.size() - 1;
  if (keys == 0) {
    issuer.CountRefused();
    out->append(kError);  // go-katsubushi's answer to a get with no key
    return;
  }
  if (keys > kMaxKeysPerGet) {
    issuer.CountRefused();
    out->append("CLIENT_ERROR too many keys\r\n");
    return;
  }
  for (size_t i = 1; i <= keys; ++i) {
    if (tokens_[i].size() > kMaxKeyLength) {
      issuer.CountRefused();
      out->append("CLIENT_ERROR key too long\r\n");
      return;
    }
  }
  ids_.resize(keys);
  // One CAS for the whole get: the IDs are consecutive and the cost per ID
  // of a multi-get is a fraction of a single get's.
  if (const Status s = issuer.NextN(ids_); !s.ok()) {
    AppendServerError(s, out);
    return;
  }
  AppendValues(out);
}

namespace {

// Adds one to a decimal number in place; false (and garbage) if the result
// needs one more digit, in which case the caller rewrites it.
bool IncrementDecimal(char* digits, size_t length) {
  for (size_t i = length; i-- > 0;) {
    if (digits[i] != '9') {
      ++digits[i];
      return true;
    }
    digits[i] = '0';
  }
  return false;
}

}  // namespace

// Writes the VALUE lines and END for tokens_[1..] and ids_ into `out` with one
// resize and plain copies: this loop is most of a multi-key get's CPU time.
void TextSession::AppendValues(std::string* out) const {
  constexpr std::string_view kValue = "VALUE ";
  constexpr std::string_view kFlags = " 0 ";
  constexpr std::string_view kEnd = "END\r\n";
  constexpr size_t kMaxDigits = 20;
  size_t bound = kEnd.size();
  for (size_t i = 0; i < ids_.size(); ++i) {
    bound += kValue.size() + tokens_[i + 1].size() + kFlags.size() + 2 + 2 + kMaxDigits + 2;
  }
  const size_t start = out->size();
  out->resize(start + bound);
  char* p = out->data() + start;
  auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  // IDs of one batch are mostly consecutive integers (same tick, same worker),
  // so the decimal text of the next one is the previous text plus one.
  char digits[kMaxDigits];
  size_t length = 0;
  for (size_t i = 0; i < ids_.size(); ++i) {
    const bool follows = i > 0 && ids_[i] == ids_[i - 1] + 1;
    if (!follows || !IncrementDecimal(digits, length)) {
      length = static_cast<size_t>(std::to_chars(digits, digits + kMaxDigits, ids_[i]).ptr - digits);
    }
    put(kValue);
    put(tokens_[i + 1]);
    put(kFlags);
    p = std::to_chars(p, p + 2, length).ptr;
    put("\r\n");
    put(std::string_view(digits, length));
    put("\r\n");
  }
  put(kEnd);
  out->resize(static_cast<size_t>(p - out->data()));
}

// mg <key> <flag>*: flags are single letters, some with a token (O<opaque>).
// We serve v (value), k (key), O (opaque), q (quiet), s (size), f (client
// flags: 0), t (TTL: -1, no expiry). A hit is never quiet, and we always hit.
void TextSession::HandleMetaGet(std::string* out) {
  if (tokens_.size() < 2) {
    out->append("CLIENT_ERROR bad command line format\r\n");
    return;
  }
  const std::string_view key = tokens_[1];
  if (key.size() > kMaxKeyLength) {
    out->append("CLIENT_ERROR key too long\r\n");
    return;
  }
  if (tokens_.size() - 2 > kMaxMetaFlags) {
    out->append("CLIENT_ERROR too many flags\r\n");
    return;
  }
  bool value = false;
  for (size_t i = 2; i < tokens_.size(); ++i) {
    const char flag = tokens_[i][0];
    if (std::string_view("vkOqsftbN").find(flag) == std::string_view::npos) {
      out->append("CLIENT_ERROR invalid flag\r\n");
      return;
    }
    if (flag == 'v') value = true;
  }
  const Result<uint64_t> id = Issuer(context_.generator, context_.stats, FrontLabel::kMemcacheText).Next();
  if (!id.ok()) {
    AppendServerError(id.status(), out);
    return;
  }
  char digits[20];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, *id);
  const size_t length = static_cast<size_t>(end - digits);

  if (value) {
    out->append("VA ");
    AppendDecimal(uint64_t{length}, out);
  } else {
    out->append("HD");
  }
  for (size_t i = 2; i < tokens_.size(); ++i) {
    const std::string_view flag = tokens_[i];
    switch (flag[0]) {
      case 'k': out->append(" k"); out->append(key); break;
      case 'O': out->append(" "); out->append(flag); break;
      case 's': out->append(" s"); AppendDecimal(uint64_t{length}, out); break;
      case 'f': out->append(" f0"); break;
      case 't': out->append(" t-1"); break;
      default: break;  // v, q, b, N change nothing in the reply of a hit
    }
  }
  out->append("\r\n");
  if (value) {
    out->append(digits, length);
    out->append("\r\n");
  }
}

void TextSession::HandleStats(std::string* out) {
  ForEachStat(context_.stats.Snapshot(), context_.version,
              [out](std::string_view name, std::string_view value) {
                out->append("STAT ");
                out->append(name);
                out->append(" ");
                out->append(value);
                out->append("\r\n");
              });
  out->append("END\r\n");
}

}  // namespace katsubushi::memcache
