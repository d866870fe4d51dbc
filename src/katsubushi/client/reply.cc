#include "katsubushi/client/reply.h"

#include <algorithm>
#include <charconv>

namespace katsubushi::client {
namespace {

using Kind = ParseResult::Kind;

ParseResult NeedMore() { return {}; }
ParseResult Error(Status status) { return {Kind::kError, status, 0, false}; }

// A decimal count without sign or leading zero; false on anything else.
bool ParseCount(std::string_view text, size_t* out) {
  if (text.empty() || text.size() > 9 || (text.size() > 1 && text.front() == '0')) return false;
  size_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  *out = value;
  return true;
}

// Writes ids into `out` in order, checking each and that they increase.
Status StoreIds(std::string_view text, size_t index, std::span<uint64_t> out) {
  Result<uint64_t> id = ParseId(text);
  if (!id.ok()) return id.status();
  if (index > 0 && *id <= out[index - 1]) return kIdsNotIncreasing;
  out[index] = *id;
  return Status::Ok();
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits an HTTP body of IDs joined by '\n' (no trailing newline).
Status StoreBodyIds(std::string_view body, std::span<uint64_t> out) {
  size_t index = 0;
  while (true) {
    const size_t newline = body.find('\n');
    if (index == out.size()) return kWrongIdCount;
    Status stored = StoreIds(body.substr(0, newline), index, out);
    if (!stored.ok()) return stored;
    ++index;
    if (newline == std::string_view::npos) break;
    body.remove_prefix(newline + 1);
  }
  return index == out.size() ? Status::Ok() : kWrongIdCount;
}

// Decodes a chunked body that starts at input[0]. kDone's `consumed` counts
// the chunked encoding through the final CRLF; `body` gets the data.
ParseResult Dechunk(std::string_view input, std::string* body) {
  size_t pos = 0;
  while (true) {
    const size_t eol = input.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      return input.size() - pos > 64 ? Error(kMalformedReply) : NeedMore();
    }
    std::string_view size_text = input.substr(pos, eol - pos);
    size_text = size_text.substr(0, size_text.find(';'));  // chunk extensions
    size_t size = 0;
    auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (size_text.empty() || size_text.size() > 8 || ec != std::errc() ||
        end != size_text.data() + size_text.size()) {
      return Error(kMalformedReply);
    }
    if (body->size() + size > kMaxReplyBytes) return Error(kReplyTooLarge);
    pos = eol + 2;
    if (size == 0) {
      // Trailers are not expected from a katsubushi server: only the final CRLF.
      if (input.size() - pos < 2) return NeedMore();
      if (input.substr(pos, 2) != "\r\n") return Error(kMalformedReply);
      return {Kind::kDone, Status::Ok(), pos + 2, true};
    }
    if (input.size() - pos < size + 2) return NeedMore();
    if (input.substr(pos + size, 2) != "\r\n") return Error(kMalformedReply);
    body->append(input.substr(pos, size));
    pos += size + 2;
  }
}

}  // namespace

std::string MemcacheKey(size_t i, size_t n) { return n == 1 ? "id" : std::to_string(i); }

void AppendMemcacheRequest(size_t n, std::string* out) {
  out->append("get");
  for (size_t i = 0; i < n; ++i) {
    out->push_back(' ');
    out->append(MemcacheKey(i, n));
  }
  out->append("\r\n");
}

void AppendHttpRequest(const ServerAddress& server, size_t n, std::string* out) {
  out->append("GET ");
  out->append(server.http_prefix);
  if (n == 1) {
    out->append("id");
  } else {
    out->append("ids?n=");
    out->append(std::to_string(n));
  }
  out->append(" HTTP/1.1\r\nHost: ");
  if (server.host.find(':') != std::string::npos) {
    out->append("[").append(server.host).append("]");
  } else {
    out->append(server.host);
  }
  out->append(":").append(std::to_string(server.port));
  out->append("\r\nAccept: text/plain\r\n\r\n");
}

Result<uint64_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > 20) return kBadIdText;
  if (text.front() == '0') return text.size() == 1 ? Result<uint64_t>(kZeroId) : kBadIdText;
  for (char c : text) {
    if (c < '0' || c > '9') return kBadIdText;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return kBadIdText;  // overflow
  return value;
}

ParseResult ParseMemcacheReply(std::string_view input, std::span<uint64_t> out) {
  size_t pos = 0;
  // Takes the next line (without CRLF); false when it is not all here yet.
  std::string_view line;
  bool too_long = false;
  auto next_line = [&]() {
    const size_t eol = input.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      too_long = input.size() - pos > kMaxMemcacheLineBytes;
      return false;
    }
    line = input.substr(pos, eol - pos);
    pos = eol + 2;
    return true;
  };
  for (size_t i = 0; i <= out.size(); ++i) {
    if (!next_line()) return too_long ? Error(kMalformedReply) : NeedMore();
    if (line.starts_with("SERVER_ERROR") || line.starts_with("CLIENT_ERROR") || line == "ERROR") {
      return Error(kServerError);
    }
    if (i == out.size()) {
      if (line != "END") return Error(kWrongIdCount);
      return {Kind::kDone, Status::Ok(), pos, true};
    }
    if (line == "END") return Error(kWrongIdCount);
    // Exactly "VALUE <key> 0 <len>", single spaces, the key we asked for.
    const std::string expected = "VALUE " + MemcacheKey(i, out.size()) + " 0 ";
    if (!line.starts_with(expected)) return Error(kMalformedReply);
    size_t length = 0;
    if (!ParseCount(line.substr(expected.size()), &length) || length == 0 || length > 20) {
      return Error(kMalformedReply);
    }
    if (input.size() - pos < length + 2) return NeedMore();
    if (input.substr(pos + length, 2) != "\r\n") return Error(kMalformedReply);
    Status stored = StoreIds(input.substr(pos, length), i, out);
    if (!stored.ok()) return Error(stored);
    pos += length + 2;
  }
  return Error(kMalformedReply);  // not reached: the loop returns at i == out.size()
}

ParseResult ParseHttpReply(std::string_view input, std::span<uint64_t> out) {
  constexpr std::string_view kVersionPrefix = "HTTP/1.";
  const size_t checked = std::min(input.size(), kVersionPrefix.size());
  if (input.substr(0, checked) != kVersionPrefix.substr(0, checked)) return Error(kNotHttp);
  const size_t header_end = input.find("\r\n\r\n");
  if (header_end == std::string_view::npos) {
    return input.size() > kMaxHttpHeaderBytes ? Error(kMalformedReply) : NeedMore();
  }
  if (header_end > kMaxHttpHeaderBytes) return Error(kMalformedReply);
  std::string_view head = input.substr(0, header_end + 2);
  size_t eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  bool keep_alive;
  if (status_line.starts_with("HTTP/1.1 ")) {
    keep_alive = true;
  } else if (status_line.starts_with("HTTP/1.0 ")) {
    keep_alive = false;
  } else {
    return Error(kMalformedReply);
  }
  const std::string_view code = status_line.substr(9, 3);
  if (code.size() != 3 || !std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return Error(kMalformedReply);
  }
  bool has_length = false;
  size_t content_length = 0;
  bool chunked = false;
  while (!head.empty()) {
    eol = head.find("\r\n");
    const std::string_view field = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return Error(kMalformedReply);
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = Trim(field.substr(colon + 1));
    if (IEquals(name, "content-length")) {
      size_t length = 0;
      if (has_length || !ParseCount(value, &length)) return Error(kMalformedReply);
      if (length > kMaxReplyBytes) return Error(kReplyTooLarge);
      has_length = true;
      content_length = length;
    } else if (IEquals(name, "transfer-encoding")) {
      if (!IEquals(value, "chunked") || chunked) return Error(kHttpUnsupported);
      chunked = true;
    } else if (IEquals(name, "connection")) {
      if (IEquals(value, "close")) keep_alive = false;
      if (IEquals(value, "keep-alive")) keep_alive = true;
    }
  }
  if (code != "200") return Error(kHttpStatusNotOk);
  if (has_length == chunked) return Error(kHttpUnsupported);
  const size_t body_start = header_end + 4;
  std::string_view rest = input.substr(body_start);
  ParseResult done{Kind::kDone, Status::Ok(), 0, keep_alive};
  Status stored;
  if (chunked) {
    std::string body;
    ParseResult dechunked = Dechunk(rest, &body);
    if (dechunked.kind != Kind::kDone) return dechunked;
    done.consumed = body_start + dechunked.consumed;
    stored = StoreBodyIds(body, out);
  } else {
    if (rest.size() < content_length) return NeedMore();
    done.consumed = body_start + content_length;
    stored = StoreBodyIds(rest.substr(0, content_length), out);
  }
  if (!stored.ok()) return Error(stored);
  return done;
}

}  // namespace katsubushi::client
