// The client's reply parsers: byte-exact framing, every split of the input,
// and no ID from anything that is not exactly a katsubushi reply.
#include "katsubushi/client/reply.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace katsubushi {
// Readable failures: the reason, not the bytes of the Status.
void PrintTo(const Status& status, std::ostream* os) { *os << status.message(); }
}  // namespace katsubushi

namespace katsubushi::client {
namespace {

using Kind = ParseResult::Kind;

enum class Protocol { kMemcache, kHttp };

ParseResult Parse(Protocol p, std::string_view input, std::span<uint64_t> out) {
  return p == Protocol::kMemcache ? ParseMemcacheReply(input, out) : ParseHttpReply(input, out);
}

// Every proper prefix of a complete reply needs more and yields nothing;
// the whole reply is done and consumed to its last byte.
std::vector<uint64_t> ParseEverySplit(Protocol p, const std::string& reply, size_t n) {
  std::vector<uint64_t> ids(n);
  for (size_t k = 0; k < reply.size(); ++k) {
    const ParseResult partial = Parse(p, std::string_view(reply).substr(0, k), ids);
    EXPECT_EQ(partial.kind, Kind::kNeedMore) << "prefix of " << k << " bytes: " << partial.error.message();
  }
  const ParseResult whole = Parse(p, reply, ids);
  EXPECT_EQ(whole.kind, Kind::kDone) << whole.error.message();
  EXPECT_EQ(whole.consumed, reply.size());
  return ids;
}

// A bad reply is an error once complete, and no prefix of it is ever done.
Status ParseBad(Protocol p, const std::string& reply, size_t n) {
  std::vector<uint64_t> ids(n);
  for (size_t k = 0; k < reply.size(); ++k) {
    const ParseResult partial = Parse(p, std::string_view(reply).substr(0, k), ids);
    EXPECT_NE(partial.kind, Kind::kDone) << "prefix of " << k << " bytes";
  }
  const ParseResult whole = Parse(p, reply, ids);
  EXPECT_EQ(whole.kind, Kind::kError) << reply;
  return whole.error;
}

TEST(ClientRequest, MemcacheKeysAreIdOrIndexes) {
  std::string one;
  AppendMemcacheRequest(1, &one);
  EXPECT_EQ(one, "get id\r\n");
  std::string three;
  AppendMemcacheRequest(3, &three);
  EXPECT_EQ(three, "get 0 1 2\r\n");
  std::string most;
  AppendMemcacheRequest(kMaxIdsPerRequest, &most);
  EXPECT_TRUE(most.ends_with(" 998 999\r\n"));
}

TEST(ClientRequest, HttpPathsFollowThePrefix) {
  auto address = ParseServerAddress("http://127.0.0.1:8080/kb");
  ASSERT_TRUE(address.ok());
  std::string one;
  AppendHttpRequest(*address, 1, &one);
  EXPECT_EQ(one, "GET /kb/id HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: text/plain\r\n\r\n");
  std::string many;
  AppendHttpRequest(*address, 7, &many);
  EXPECT_TRUE(many.starts_with("GET /kb/ids?n=7 HTTP/1.1\r\n"));
  auto v6 = ParseServerAddress("http://[::1]:81");
  ASSERT_TRUE(v6.ok());
  std::string host;
  AppendHttpRequest(*v6, 1, &host);
  EXPECT_TRUE(host.starts_with("GET /id HTTP/1.1\r\nHost: [::1]:81\r\n"));
}

TEST(ClientParseId, CanonicalDecimalOnly) {
  EXPECT_EQ(*ParseId("1"), 1u);
  EXPECT_EQ(*ParseId("18446744073709551615"), 18446744073709551615u);
  EXPECT_EQ(ParseId("0").status(), kZeroId);
  for (const char* bad : {"", "01", "+1", "-1", " 1", "1 ", "1a", "0x10", "18446744073709551616",
                          "99999999999999999999", "123456789012345678901"}) {
    EXPECT_EQ(ParseId(bad).status(), kBadIdText) << bad;
  }
}

TEST(ClientMemcacheReply, OneId) {
  const auto ids = ParseEverySplit(Protocol::kMemcache,
                                   "VALUE id 0 19\r\n1576894129223245824\r\nEND\r\n", 1);
  EXPECT_EQ(ids[0], 1576894129223245824u);
}

TEST(ClientMemcacheReply, SeveralIdsInOrder) {
  const auto ids = ParseEverySplit(Protocol::kMemcache,
                                   "VALUE 0 0 2\r\n10\r\nVALUE 1 0 2\r\n11\r\nVALUE 2 0 3\r\n200\r\nEND\r\n", 3);
  EXPECT_EQ(ids, (std::vector<uint64_t>{10, 11, 200}));
}

TEST(ClientMemcacheReply, ErrorsAreErrors) {
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "SERVER_ERROR clock moved backwards\r\n", 1), kServerError);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "ERROR\r\n", 1), kServerError);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "CLIENT_ERROR bad\r\n", 1), kServerError);
  // An error after some good values still yields nothing.
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE 0 0 1\r\n5\r\nSERVER_ERROR x\r\n", 2), kServerError);
}

TEST(ClientMemcacheReply, WrongCountIsAnError) {
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "END\r\n", 1), kWrongIdCount);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE 0 0 1\r\n5\r\nEND\r\n", 2), kWrongIdCount);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE 0 0 1\r\n5\r\nVALUE 1 0 1\r\n6\r\nVALUE 2 0 1\r\n7\r\nEND\r\n", 2),
            kWrongIdCount);
}

TEST(ClientMemcacheReply, BadIdsAreErrors) {
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE id 0 3\r\n12a\r\nEND\r\n", 1), kBadIdText);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE id 0 1\r\n0\r\nEND\r\n", 1), kZeroId);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE id 0 20\r\n18446744073709551616\r\nEND\r\n", 1), kBadIdText);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE 0 0 1\r\n6\r\nVALUE 1 0 1\r\n6\r\nEND\r\n", 2),
            kIdsNotIncreasing);
  EXPECT_EQ(ParseBad(Protocol::kMemcache, "VALUE 0 0 1\r\n7\r\nVALUE 1 0 1\r\n6\r\nEND\r\n", 2),
            kIdsNotIncreasing);
}

TEST(ClientMemcacheReply, FramingIsExact) {
  for (const char* bad : {
           "VALUE other 0 1\r\n5\r\nEND\r\n",    // not the key asked for
           "VALUE id 1 1\r\n5\r\nEND\r\n",       // flags
           "VALUE id 0 2\r\n5\r\n\r\nEND\r\n",   // length lies
           "VALUE id 0 1\r\n55\r\nEND\r\n",      // length lies the other way
           "VALUE  id 0 1\r\n5\r\nEND\r\n",      // double space
           "VALUE id 0 01\r\n5\r\nEND\r\n",      // length not canonical
           "VALUE id 0 0\r\n\r\nEND\r\n",        // empty value
           "VALUE id 0 1 77\r\n5\r\nEND\r\n",    // a CAS field
           "value id 0 1\r\n5\r\nEND\r\n",       // case
           "VALUE id 0 1\r\n5\r\nEND \r\n",      // END with a space
           "VALUE id 0 1\r\n5\nEND\r\n",         // bare LF
           "STORED\r\n",
       }) {
    const Status s = ParseBad(Protocol::kMemcache, bad, 1);
    EXPECT_TRUE(s == kMalformedReply || s == kWrongIdCount) << bad << ": " << s.message();
  }
}

TEST(ClientMemcacheReply, ALineThatNeverEndsIsRefused) {
  std::vector<uint64_t> ids(1);
  const std::string endless(kMaxMemcacheLineBytes + 1, 'V');
  EXPECT_EQ(ParseMemcacheReply(endless, ids).kind, Kind::kError);
  EXPECT_EQ(ParseMemcacheReply(endless.substr(0, kMaxMemcacheLineBytes), ids).kind, Kind::kNeedMore);
}

TEST(ClientHttpReply, ContentLength) {
  const auto ids = ParseEverySplit(
      Protocol::kHttp,
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\n1576894129592344576", 1);
  EXPECT_EQ(ids[0], 1576894129592344576u);
}

TEST(ClientHttpReply, ChunkedAsGoSendsIt) {
  const std::string body = "100\n101\n102";
  const auto ids = ParseEverySplit(
      Protocol::kHttp,
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n100\n\r\n7;x=y\r\n101\n102\r\n0\r\n\r\n", 3);
  EXPECT_EQ(ids, (std::vector<uint64_t>{100, 101, 102}));
}

TEST(ClientHttpReply, KeepAliveFollowsTheReply) {
  std::vector<uint64_t> ids(1);
  EXPECT_TRUE(ParseHttpReply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n5", ids).keep_alive);
  EXPECT_FALSE(ParseHttpReply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n5", ids).keep_alive);
  EXPECT_FALSE(ParseHttpReply("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n5", ids).keep_alive);
}

TEST(ClientHttpReply, BadRepliesAreErrors) {
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 1),
            kHttpStatusNotOk);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 1), kBadIdText);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n5\n", 1), kWrongIdCount);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n5\n\n", 2), kBadIdText);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n5\n6", 1), kWrongIdCount);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n5\n6", 3), kWrongIdCount);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n6\n6", 2), kIdsNotIncreasing);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n0", 1), kZeroId);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\n\r\n5", 1), kHttpUnsupported);
  EXPECT_EQ(ParseBad(Protocol::kHttp,
                     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n5\r\n0\r\n\r\n", 1),
            kHttpUnsupported);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n5", 1),
            kMalformedReply);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n5XX0\r\n\r\n", 1),
            kMalformedReply);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", 1),
            kMalformedReply);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "SPDY/3 200 OK\r\n\r\n", 1), kNotHttp);
  EXPECT_EQ(ParseBad(Protocol::kHttp, "HTTP/1.1 2x0 OK\r\n\r\n", 1), kMalformedReply);
}

// A memcached port given as an http:// address answers "VALUE ..." or
// "ERROR": refused at its first byte, not after the whole attempt timeout.
TEST(ClientHttpReply, AnotherProtocolIsRefusedAtItsFirstByte) {
  std::vector<uint64_t> ids(1);
  EXPECT_EQ(ParseHttpReply("V", ids).error, kNotHttp);
  EXPECT_EQ(ParseHttpReply("E", ids).error, kNotHttp);
  EXPECT_EQ(ParseHttpReply("HTTP/2", ids).error, kNotHttp);
  EXPECT_EQ(ParseHttpReply("HTTX", ids).error, kNotHttp);
  EXPECT_EQ(ParseHttpReply("", ids).kind, Kind::kNeedMore);
  EXPECT_EQ(ParseHttpReply("HTTP/1", ids).kind, Kind::kNeedMore);
  EXPECT_EQ(ParseHttpReply("HTTP/1.1 2", ids).kind, Kind::kNeedMore);
}

TEST(ClientHttpReply, ClaimedLengthsAreNotBelieved) {
  std::vector<uint64_t> ids(1);
  const std::string huge = "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n";
  EXPECT_EQ(ParseHttpReply(huge, ids).error, kReplyTooLarge);
  const std::string huge_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFF\r\n";
  EXPECT_EQ(ParseHttpReply(huge_chunk, ids).error, kReplyTooLarge);
  const std::string endless_headers = "HTTP/1.1 200 OK\r\n" + std::string(kMaxHttpHeaderBytes, 'h');
  EXPECT_EQ(ParseHttpReply(endless_headers, ids).kind, Kind::kError);
}

}  // namespace
}  // namespace katsubushi::client
