// libFuzzer target for the memcached binary protocol session.
//
// The first input byte seeds the read sizes; the rest is the connection's
// input with its first byte forced to the request magic (as NewSession would
// otherwise pick the text protocol).
//
// Invariants, beyond "no crash" and the shared framing ones: the reply bytes
// are exactly the response packets the requests call for, in order, each with
// the request's opcode and opaque:
//   * get/getq/getk/getkq: OK, 4 zero flag bytes, the key only for the K
//     variants, and an ID of this worker, strictly increasing;
//   * noop, version: one OK packet; stat: OK packets ending with an empty
//     one (or one NOT_FOUND for an unknown stat name); quit: OK, then close;
//     quitq: close without a packet; other opcodes: UNKNOWN_COMMAND;
//   * a bad magic, a body length over what the opcode can carry (a get's
//     kMaxBinaryGetBody, else kMaxBinaryBody) or under key + extras: one
//     INVALID_ARGUMENTS packet as soon as the header is in, then close,
//     having buffered none of it;
//   * a partial packet at the end is left unanswered;
//   * every answered packet, and nothing else, is reported completed.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "memcache/binary_header.h"
#include "memcache_harness.h"

namespace {

namespace mc = katsubushi::memcache;

struct Packet {
  mc::RequestHeader header;  // a response's header, decoded with the request layout
  std::string_view extras, key, value;
};

// Takes one response packet off the front of *replies; aborts on bad framing.
Packet TakePacket(std::string_view* replies) {
  if (replies->size() < mc::kBinaryHeaderSize) std::abort();
  Packet p;
  p.header = mc::DecodeRequestHeader(reinterpret_cast<const unsigned char*>(replies->data()));
  if (p.header.magic != mc::kBinaryResponseMagic) std::abort();
  const size_t body = p.header.body_length;
  if (replies->size() - mc::kBinaryHeaderSize < body) std::abort();
  if (size_t{p.header.extras_length} + p.header.key_length > body) std::abort();
  std::string_view rest = replies->substr(mc::kBinaryHeaderSize, body);
  p.extras = rest.substr(0, p.header.extras_length);
  p.key = rest.substr(p.header.extras_length, p.header.key_length);
  p.value = rest.substr(p.header.extras_length + p.header.key_length);
  replies->remove_prefix(mc::kBinaryHeaderSize + body);
  return p;
}

uint16_t StatusOf(const Packet& p) { return p.header.vbucket; }  // same offset in a response

void ExpectFor(const mc::RequestHeader& request, const Packet& p, mc::BinaryStatus status) {
  if (p.header.opcode != request.opcode || p.header.opaque != request.opaque) std::abort();
  if (StatusOf(p) != static_cast<uint16_t>(status)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const unsigned seed = data[0];
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  input[0] = static_cast<char>(mc::kBinaryRequestMagic);

  const katsubushi::fuzz::Outcome outcome = katsubushi::fuzz::FeedTwoWaysAndCompare(input, seed);
  std::string_view replies = outcome.out;
  uint64_t last_id = 0;
  size_t at = 0;
  size_t packets = 0;
  bool closed = false;
  while (!closed && input.size() - at >= mc::kBinaryHeaderSize) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(input.data() + at);
    const mc::RequestHeader h = mc::DecodeRequestHeader(bytes);
    const bool get = h.opcode == static_cast<uint8_t>(mc::Opcode::kGet) ||
                     h.opcode == static_cast<uint8_t>(mc::Opcode::kGetQ) ||
                     h.opcode == static_cast<uint8_t>(mc::Opcode::kGetK) ||
                     h.opcode == static_cast<uint8_t>(mc::Opcode::kGetKQ);
    const size_t max_body = get ? mc::kMaxBinaryGetBody : mc::kMaxBinaryBody;
    const bool bad_frame = h.magic != mc::kBinaryRequestMagic || h.body_length > max_body ||
                           uint32_t{h.key_length} + h.extras_length > h.body_length;
    if (bad_frame) {
      const Packet p = TakePacket(&replies);
      ExpectFor(h, p, mc::BinaryStatus::kInvalidArguments);
      if (outcome.consumed != input.size() || !outcome.closed) std::abort();
      closed = true;
      break;
    }
    if (input.size() - at < mc::kBinaryHeaderSize + h.body_length) break;
    const std::string_view key = std::string_view(input).substr(
        at + mc::kBinaryHeaderSize + h.extras_length, h.key_length);
    at += mc::kBinaryHeaderSize + h.body_length;
    ++packets;
    switch (static_cast<mc::Opcode>(h.opcode)) {
      case mc::Opcode::kGet:
      case mc::Opcode::kGetQ:
      case mc::Opcode::kGetK:
      case mc::Opcode::kGetKQ: {
        const Packet p = TakePacket(&replies);
        ExpectFor(h, p, mc::BinaryStatus::kOk);
        const bool with_key = h.opcode == static_cast<uint8_t>(mc::Opcode::kGetK) ||
                              h.opcode == static_cast<uint8_t>(mc::Opcode::kGetKQ);
        if (p.extras != std::string_view("\0\0\0\0", 4)) std::abort();
        if (p.key != (with_key ? key : std::string_view())) std::abort();
        katsubushi::fuzz::CheckIssuedId(p.value, &last_id);
        break;
      }
      case mc::Opcode::kNoop:
      case mc::Opcode::kVersion: {
        const Packet p = TakePacket(&replies);
        ExpectFor(h, p, mc::BinaryStatus::kOk);
        const bool version = h.opcode == static_cast<uint8_t>(mc::Opcode::kVersion);
        if (p.value != (version ? "1.0.0" : "") || !p.key.empty()) std::abort();
        break;
      }
      case mc::Opcode::kStat: {
        Packet p = TakePacket(&replies);
        if (StatusOf(p) == static_cast<uint16_t>(mc::BinaryStatus::kKeyNotFound)) {
          ExpectFor(h, p, mc::BinaryStatus::kKeyNotFound);
          if (key.empty()) std::abort();
          break;
        }
        size_t named = 0;
        while (!p.key.empty()) {
          ExpectFor(h, p, mc::BinaryStatus::kOk);
          if (!key.empty() && p.key != key) std::abort();
          ++named;
          p = TakePacket(&replies);
        }
        ExpectFor(h, p, mc::BinaryStatus::kOk);  // the terminator
        if (!p.value.empty() || (!key.empty() && named != 1)) std::abort();
        break;
      }
      case mc::Opcode::kQuit:
        ExpectFor(h, TakePacket(&replies), mc::BinaryStatus::kOk);
        closed = true;
        break;
      case mc::Opcode::kQuitQ:
        closed = true;
        break;
      default:
        ExpectFor(h, TakePacket(&replies), mc::BinaryStatus::kUnknownCommand);
        break;
    }
    if (closed && (outcome.consumed != at || !outcome.closed)) std::abort();
  }
  if (!closed && (outcome.closed || outcome.consumed != at)) std::abort();
  if (!replies.empty()) std::abort();
  if (outcome.completed != packets) std::abort();
  return 0;
}
