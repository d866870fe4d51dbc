#include "memcache/binary_session.h"

#include <charconv>

#include "katsubushi/issuer.h"
#include "memcache/stats_reply.h"

namespace katsubushi::memcache {
namespace {

// GET replies carry 4 bytes of flags, always 0 here.
constexpr std::string_view kZeroFlags("\0\0\0\0", 4);

void AppendError(const RequestHeader& h, BinaryStatus status, std::string_view message,
                 std::string* out) {
  AppendResponse(h.opcode, status, h.opaque, {}, {}, message, out);
}

}  // namespace

size_t MaxBodyLength(uint8_t opcode) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kGet:
    case Opcode::kGetQ:
    case Opcode::kGetK:
    case Opcode::kGetKQ:
      return kMaxBinaryGetBody;
    default:
      return kMaxBinaryBody;
  }
}

ProcessResult BinarySession::Process(std::string_view input, std::string* out) {
  ProcessResult result;
  const auto* bytes = reinterpret_cast<const unsigned char*>(input.data());
  while (input.size() - result.consumed >= kBinaryHeaderSize) {
    const unsigned char* at = bytes + result.consumed;
    const RequestHeader h = DecodeRequestHeader(at);
    // Check the magic first: past a bad one nothing after it can be framed.
    if (h.magic != kBinaryRequestMagic) {
      AppendError(h, BinaryStatus::kInvalidArguments, "Invalid request magic", out);
      result.consumed = input.size();
      result.close = true;
      return result;
    }
    // Refused from the header alone, so the body is never waited for.
    const bool too_large = h.body_length > MaxBodyLength(h.opcode);
    if (too_large || uint32_t{h.key_length} + h.extras_length > h.body_length) {
      AppendError(h, BinaryStatus::kInvalidArguments,
                  too_large ? "Body too large" : "Invalid body length", out);
      result.consumed = input.size();
      result.close = true;
      return result;
    }
    const size_t packet = kBinaryHeaderSize + h.body_length;
    if (input.size() - result.consumed < packet) break;  // wait for the rest (bounded above)
    const std::string_view key(
        reinterpret_cast<const char*>(at) + kBinaryHeaderSize + h.extras_length, h.key_length);
    result.consumed += packet;
    ++result.completed;
    if (!Handle(h, key, out)) {
      result.close = true;
      return result;
    }
  }
  return result;
}

bool BinarySession::Handle(const RequestHeader& h, std::string_view key, std::string* out) {
  switch (static_cast<Opcode>(h.opcode)) {
    case Opcode::kGet:
    case Opcode::kGetQ:
    case Opcode::kGetK:
    case Opcode::kGetKQ:
      HandleGet(h, key, out);
      return true;
    case Opcode::kNoop:
      AppendResponse(h.opcode, BinaryStatus::kOk, h.opaque, {}, {}, {}, out);
      return true;
    case Opcode::kVersion:
      AppendResponse(h.opcode, BinaryStatus::kOk, h.opaque, {}, {}, context_.version, out);
      return true;
    case Opcode::kStat:
      HandleStat(h, key, out);
      return true;
    case Opcode::kQuit:
      AppendResponse(h.opcode, BinaryStatus::kOk, h.opaque, {}, {}, {}, out);
      return false;
    case Opcode::kQuitQ:
      return false;
  }
  AppendError(h, BinaryStatus::kUnknownCommand, "Unknown command", out);
  return true;
}

void BinarySession::HandleGet(const RequestHeader& h, std::string_view key, std::string* out) {
  const Result<uint64_t> id = Issuer(context_.generator, context_.stats, FrontLabel::kMemcacheBinary).Next();
  if (!id.ok()) {
    AppendError(h, BinaryStatus::kTemporaryFailure, id.status().message(), out);
    return;
  }
  char digits[20];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, *id);
  const bool with_key = h.opcode == static_cast<uint8_t>(Opcode::kGetK) ||
                        h.opcode == static_cast<uint8_t>(Opcode::kGetKQ);
  AppendResponse(h.opcode, BinaryStatus::kOk, h.opaque, kZeroFlags, with_key ? key : std::string_view(),
                 std::string_view(digits, static_cast<size_t>(end - digits)), out);
}

void BinarySession::HandleStat(const RequestHeader& h, std::string_view key, std::string* out) {
  bool found = false;
  ForEachStat(context_.stats.Snapshot(), context_.version,
              [&](std::string_view name, std::string_view value) {
                if (!key.empty() && name != key) return;
                found = true;
                AppendResponse(h.opcode, BinaryStatus::kOk, h.opaque, {}, name, value, out);
              });
  if (!key.empty() && !found) {
    AppendError(h, BinaryStatus::kKeyNotFound, "Not found", out);
    return;
  }
  AppendResponse(h.opcode, BinaryStatus::kOk, h.opaque, {}, {}, {}, out);  // terminator
}

}  // namespace katsubushi::memcache
