// The 24-byte header of memcached's binary protocol, decoded from and encoded
// to network byte order in exactly one place each.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace katsubushi::memcache {

inline constexpr uint8_t kBinaryRequestMagic = 0x80;
inline constexpr uint8_t kBinaryResponseMagic = 0x81;

enum class Opcode : uint8_t {
  kGet = 0x00,
  kQuit = 0x07,
  kGetQ = 0x09,
  kNoop = 0x0a,
  kVersion = 0x0b,
  kGetK = 0x0c,
  kGetKQ = 0x0d,
  kStat = 0x10,
  kQuitQ = 0x17,
};

enum class BinaryStatus : uint16_t {
  kOk = 0x0000,
  kKeyNotFound = 0x0001,
  kInvalidArguments = 0x0004,
  kUnknownCommand = 0x0081,
  kTemporaryFailure = 0x0086,
};

struct RequestHeader {
  uint8_t magic = 0;
  uint8_t opcode = 0;
  uint16_t key_length = 0;
  uint8_t extras_length = 0;
  uint8_t data_type = 0;
  uint16_t vbucket = 0;
  uint32_t body_length = 0;
  uint32_t opaque = 0;
  uint64_t cas = 0;
};

// Precondition: `bytes` holds at least 24 bytes.
inline RequestHeader DecodeRequestHeader(const unsigned char* b) {
  auto u16 = [b](int i) { return static_cast<uint16_t>((b[i] << 8) | b[i + 1]); };
  auto u32 = [b](int i) {
    return (uint32_t{b[i]} << 24) | (uint32_t{b[i + 1]} << 16) | (uint32_t{b[i + 2]} << 8) | b[i + 3];
  };
  RequestHeader h;
  h.magic = b[0];
  h.opcode = b[1];
  h.key_length = u16(2);
  h.extras_length = b[4];
  h.data_type = b[5];
  h.vbucket = u16(6);
  h.body_length = u32(8);
  h.opaque = u32(12);
  h.cas = (uint64_t{u32(16)} << 32) | u32(20);
  return h;
}

// Appends one response packet. `opaque` is echoed as the request gave it.
inline void AppendResponse(uint8_t opcode, BinaryStatus status, uint32_t opaque,
                           std::string_view extras, std::string_view key, std::string_view value,
                           std::string* out) {
  const uint32_t body = static_cast<uint32_t>(extras.size() + key.size() + value.size());
  const uint16_t st = static_cast<uint16_t>(status);
  const char header[24] = {
      static_cast<char>(kBinaryResponseMagic),
      static_cast<char>(opcode),
      static_cast<char>(key.size() >> 8),
      static_cast<char>(key.size() & 0xff),
      static_cast<char>(extras.size()),
      0,  // data type
      static_cast<char>(st >> 8),
      static_cast<char>(st & 0xff),
      static_cast<char>(body >> 24),
      static_cast<char>((body >> 16) & 0xff),
      static_cast<char>((body >> 8) & 0xff),
      static_cast<char>(body & 0xff),
      static_cast<char>(opaque >> 24),
      static_cast<char>((opaque >> 16) & 0xff),
      static_cast<char>((opaque >> 8) & 0xff),
      static_cast<char>(opaque & 0xff),
      0, 0, 0, 0, 0, 0, 0, 0,  // cas
  };
  out->append(header, sizeof header);
  out->append(extras);
  out->append(key);
  out->append(value);
}

}  // namespace katsubushi::memcache
