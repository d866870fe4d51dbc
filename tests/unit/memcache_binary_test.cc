#include <gtest/gtest.h>

#include <random>

#include "memcache/binary_header.h"
#include "memcache_test_util.h"

namespace katsubushi::memcache {
namespace {

using testing::ExpectSameForEverySplit;
using testing::Feed;
using testing::Service;

std::string Request(uint8_t opcode, uint32_t opaque, std::string_view key = {},
                    std::string_view extras = {}, std::string_view value = {},
                    std::optional<uint32_t> body_override = std::nullopt) {
  const uint32_t body = body_override.value_or(
      static_cast<uint32_t>(extras.size() + key.size() + value.size()));
  std::string r(24, '\0');
  r[0] = static_cast<char>(0x80);
  r[1] = static_cast<char>(opcode);
  r[2] = static_cast<char>(key.size() >> 8);
  r[3] = static_cast<char>(key.size() & 0xff);
  r[4] = static_cast<char>(extras.size());
  for (int i = 0; i < 4; ++i) r[8 + i] = static_cast<char>(body >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) r[12 + i] = static_cast<char>(opaque >> (24 - 8 * i));
  return r + std::string(extras) + std::string(key) + std::string(value);
}

std::string Response(uint8_t opcode, uint16_t status, uint32_t opaque, std::string_view extras,
                     std::string_view key, std::string_view value) {
  std::string out;
  AppendResponse(opcode, static_cast<BinaryStatus>(status), opaque, extras, key, value, &out);
  return out;
}

const std::string kFlags("\0\0\0\0", 4);

TEST(MemcacheBinaryTest, ResponseHeaderBytes) {
  // Byte-exact against the protocol: magic, opcode, key length, extras
  // length, data type, status, body length, opaque, cas.
  const std::string r = Response(0x00, 0, 0xdeadbeef, kFlags, "", "1234");
  const std::string expected("\x81\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x08\xde\xad\xbe\xef"
                             "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                             "1234",
                             32);
  EXPECT_EQ(r, expected);
}

TEST(MemcacheBinaryTest, GetEchoesOpaqueWithFlagsAndDecimalId) {
  const auto t = ExpectSameForEverySplit(Request(0x00, 0x01020304, "key"));
  EXPECT_EQ(t.out, Response(0x00, 0, 0x01020304, kFlags, "", Service::Id(0)));
}

TEST(MemcacheBinaryTest, KeyedAndQuietGetsAndNoop) {
  // libmemcached's multi-get: GETKQ for each key, then NOOP.
  const auto t = ExpectSameForEverySplit(Request(0x0d, 1, "a") + Request(0x0d, 2, "bb") +
                                         Request(0x09, 3, "c") + Request(0x0c, 4, "d") +
                                         Request(0x0a, 5));
  EXPECT_EQ(t.out, Response(0x0d, 0, 1, kFlags, "a", Service::Id(0)) +
                       Response(0x0d, 0, 2, kFlags, "bb", Service::Id(1)) +
                       Response(0x09, 0, 3, kFlags, "", Service::Id(2)) +
                       Response(0x0c, 0, 4, kFlags, "d", Service::Id(3)) +
                       Response(0x0a, 0, 5, "", "", ""));
}

TEST(MemcacheBinaryTest, Version) {
  const auto t = ExpectSameForEverySplit(Request(0x0b, 77));
  EXPECT_EQ(t.out, Response(0x0b, 0, 77, "", "", "9.9.9"));
}

TEST(MemcacheBinaryTest, StatAllThenTerminator) {
  Service service;
  const auto t = Feed(service, {Request(0x10, 9)});
  // Walk the packets: 9 stats then an empty one.
  std::vector<std::string> keys;
  size_t pos = 0;
  while (pos + 24 <= t.out.size()) {
    const RequestHeader h = DecodeRequestHeader(reinterpret_cast<const unsigned char*>(t.out.data() + pos));
    EXPECT_EQ(h.magic, 0x81);
    EXPECT_EQ(h.opcode, 0x10);
    EXPECT_EQ(h.opaque, 9u);
    keys.push_back(t.out.substr(pos + 24, h.key_length));
    pos += 24 + h.body_length;
  }
  EXPECT_EQ(pos, t.out.size());
  EXPECT_EQ(keys, (std::vector<std::string>{"pid", "uptime", "time", "version", "curr_connections",
                                            "total_connections", "cmd_get", "get_hits",
                                            "get_misses", ""}));
}

TEST(MemcacheBinaryTest, StatWithKey) {
  const auto t = ExpectSameForEverySplit(Request(0x10, 3, "version") + Request(0x10, 4, "nope"));
  EXPECT_EQ(t.out, Response(0x10, 0, 3, "", "version", "9.9.9") + Response(0x10, 0, 3, "", "", "") +
                       Response(0x10, 0x0001, 4, "", "", "Not found"));
}

TEST(MemcacheBinaryTest, UnknownOpcodeEchoesOpcodeAndOpaqueAndKeepsGoing) {
  const auto t = ExpectSameForEverySplit(Request(0x01, 42, "k", "12345678", "v") + Request(0x0b, 43));
  EXPECT_EQ(t.out, Response(0x01, 0x0081, 42, "", "", "Unknown command") +
                       Response(0x0b, 0, 43, "", "", "9.9.9"));
  EXPECT_FALSE(t.closed);
}

TEST(MemcacheBinaryTest, QuitAndQuitQ) {
  auto t = ExpectSameForEverySplit(Request(0x07, 5) + Request(0x0b, 6));
  EXPECT_EQ(t.out, Response(0x07, 0, 5, "", "", ""));
  EXPECT_TRUE(t.closed);
  t = ExpectSameForEverySplit(Request(0x17, 5) + Request(0x0b, 6));
  EXPECT_EQ(t.out, "");
  EXPECT_TRUE(t.closed);
}

TEST(MemcacheBinaryTest, HugeBodyLengthIsRefusedWithoutWaitingForIt) {
  Service service;
  const auto t = Feed(service, {Request(0x00, 7, "", "", "", 0xFFFFFFFFu)});
  EXPECT_EQ(t.out, Response(0x00, 0x0004, 7, "", "", "Body too large"));
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.pending, 0u);
}

// A get's body is its key: a header announcing more is refused before any
// of the body is sent, so a stalled get cannot pin kMaxBinaryBody.
TEST(MemcacheBinaryTest, GetBodyOverAKeyIsRefusedFromTheHeaderAlone) {
  for (const uint8_t opcode : {0x00, 0x09, 0x0c, 0x0d}) {
    Service service;
    const std::string header =
        Request(opcode, 8, "", "", "", static_cast<uint32_t>(kMaxBinaryGetBody + 1)).substr(0, 24);
    ASSERT_EQ(header.size(), kBinaryHeaderSize);
    const auto t = Feed(service, {header});
    EXPECT_EQ(t.out, Response(opcode, 0x0004, 8, "", "", "Body too large")) << int{opcode};
    EXPECT_TRUE(t.closed);
    EXPECT_EQ(t.pending, 0u);
    EXPECT_EQ(t.total_completed(), 0u);
    EXPECT_EQ(service.stats.Snapshot().cmd_get, 0u);
  }
}

TEST(MemcacheBinaryTest, GetWithTheLongestKeyIsServedAndOtherOpcodesKeepTheirLimit) {
  const std::string key(kMaxKeyLength, 'k');
  auto t = ExpectSameForEverySplit(Request(0x0c, 1, key));
  EXPECT_EQ(t.out, Response(0x0c, 0, 1, kFlags, key, Service::Id(0)));
  EXPECT_FALSE(t.closed);
  // A NOOP may still announce (and send) a body past a get's limit.
  Service service;
  const std::string noop = Request(0x0a, 2, "", "", std::string(kMaxBinaryGetBody + 1, 'v'));
  t = Feed(service, {noop.substr(0, 24), noop.substr(24)});
  EXPECT_EQ(t.completed, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(t.out, Response(0x0a, 0, 2, "", "", ""));
  EXPECT_FALSE(t.closed);
}

TEST(MemcacheBinaryTest, APartialPacketIsNotACompletedCommand) {
  Service service;
  const std::string get = Request(0x00, 1, "key");
  auto t = Feed(service, {get.substr(0, 10), get.substr(10, 14), get.substr(24, 2), get.substr(26)});
  EXPECT_EQ(t.completed, (std::vector<size_t>{0, 0, 0, 1}));
  const std::string pipeline = Request(0x0d, 1, "a") + Request(0x0d, 2, "b") + Request(0x0a, 3);
  t = ExpectSameForEverySplit(pipeline);
  EXPECT_EQ(t.total_completed(), 3u);
  t = Feed(service, {pipeline.substr(0, 30), pipeline.substr(30)});
  EXPECT_EQ(t.completed, (std::vector<size_t>{1, 2}));
}

TEST(MemcacheBinaryTest, BodyShorterThanKeyIsRefused) {
  Service service;
  std::string r = Request(0x00, 7, "abc", "", "", 2);
  const auto t = Feed(service, {r});
  EXPECT_EQ(t.out, Response(0x00, 0x0004, 7, "", "", "Invalid body length"));
  EXPECT_TRUE(t.closed);
}

TEST(MemcacheBinaryTest, BadMagicAfterAGoodPacketCloses) {
  Service service;
  std::string bad = Request(0x0b, 2);
  bad[0] = 0x42;
  const auto t = Feed(service, {Request(0x0b, 1) + bad});
  EXPECT_EQ(t.out, Response(0x0b, 0, 1, "", "", "9.9.9") +
                       Response(0x0b, 0x0004, 2, "", "", "Invalid request magic"));
  EXPECT_TRUE(t.closed);
}

TEST(MemcacheBinaryTest, MaxBodyIsAcceptedAndBuffered) {
  Service service;
  const std::string value(kMaxBinaryBody, 'v');
  const auto t = Feed(service, {Request(0x0a, 1, "", "", value)});
  EXPECT_EQ(t.out, Response(0x0a, 0, 1, "", "", ""));
}

TEST(MemcacheBinaryTest, GeneratorFailureIsABinaryStatusNotText) {
  const auto t = ExpectSameForEverySplit(Request(0x00, 11, "k"), [](Service& s) {
    ASSERT_TRUE(s.generator->Next().ok());
    s.clock.SetMillis(testing::kTestMillis - 1000);
  });
  EXPECT_EQ(t.out, Response(0x00, 0x0086, 11, "", "", "clock moved backwards"));
  EXPECT_FALSE(t.closed);
}

TEST(MemcacheBinaryTest, RandomBytesNeverBreakTheInvariants) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    Service service;
    std::vector<std::string> chunks;
    for (int c = 0; c < 10; ++c) {
      std::string chunk(rng() % 512, '\0');
      for (char& ch : chunk) ch = static_cast<char>(rng() % 256);
      chunks.push_back(chunk);
    }
    chunks[0].insert(0, 1, static_cast<char>(0x80));
    const auto t = Feed(service, chunks);
    EXPECT_LT(t.max_pending, kMaxPendingBytes);
  }
}

}  // namespace
}  // namespace katsubushi::memcache
