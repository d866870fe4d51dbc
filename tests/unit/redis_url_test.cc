// The Redis client's pure parts: the URL forms (raus's rules for go-katsubushi's
// two schemes, then TLS, cluster seeds and Sentinel), the cluster hash slot,
// and what an error reply means for the connection.
#include <gtest/gtest.h>

#include "katsubushi/redis/error_reply.h"
#include "katsubushi/redis/redis_url.h"
#include "katsubushi/redis/reply.h"
#include "katsubushi/redis/topology.h"

namespace katsubushi::redis {
namespace {

TEST(RedisUrlTest, DefaultsAreRausDefaults) {
  Result<RedisUrl> url = ParseRedisUrl("redis://redis.local");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->mode, RedisUrl::Mode::kStandalone);
  EXPECT_FALSE(url->tls);
  ASSERT_EQ(url->nodes.size(), 1u);
  EXPECT_EQ(url->nodes[0].host, "redis.local");
  EXPECT_EQ(url->nodes[0].port, 6379);
  EXPECT_EQ(url->db, 0);
  EXPECT_EQ(url->ns, "raus");
  EXPECT_FALSE(url->has_password);
}

TEST(RedisUrlTest, EveryPart) {
  Result<RedisUrl> url = ParseRedisUrl("redis://app:p%40ss%3Aword@10.0.0.5:6380/3?ns=kb%2Fprod&x=1");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->username, "app");
  EXPECT_EQ(url->password, "p@ss:word");
  EXPECT_TRUE(url->has_password);
  EXPECT_EQ(url->nodes[0].host, "10.0.0.5");
  EXPECT_EQ(url->nodes[0].port, 6380);
  EXPECT_EQ(url->db, 3);
  EXPECT_EQ(url->ns, "kb/prod");
  EXPECT_EQ(url->Redacted(), "redis://app:xxxxx@10.0.0.5:6380/3?ns=kb/prod");
}

TEST(RedisUrlTest, PasswordWithoutUserAndFirstNsWins) {
  Result<RedisUrl> url = ParseRedisUrl("redis://:secret@h/?ns=a&ns=b");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->username, "");
  EXPECT_EQ(url->password, "secret");
  EXPECT_EQ(url->db, 0);
  EXPECT_EQ(url->ns, "a");
}

TEST(RedisUrlTest, Ipv6AndFirstPathSegment) {
  Result<RedisUrl> url = ParseRedisUrl("redis://[::1]:7000/2/ignored");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->nodes[0].host, "::1");
  EXPECT_EQ(url->nodes[0].port, 7000);
  EXPECT_EQ(url->db, 2);
  EXPECT_EQ(url->nodes[0].ToString(), "[::1]:7000");
}

TEST(RedisUrlTest, TlsSchemes) {
  Result<RedisUrl> url = ParseRedisUrl("rediss://default:tok@master.x.cache.amazonaws.com:6379/0?ns=kb");
  ASSERT_TRUE(url.ok());
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->mode, RedisUrl::Mode::kStandalone);
  EXPECT_EQ(url->Redacted(), "rediss://default:xxxxx@master.x.cache.amazonaws.com:6379/0?ns=kb");
  Result<RedisUrl> cluster = ParseRedisUrl("REDISCLUSTERS://cfg.x.cache.amazonaws.com:6379?ns=kb");
  ASSERT_TRUE(cluster.ok());
  EXPECT_TRUE(cluster->tls);
  EXPECT_TRUE(cluster->cluster());
}

TEST(RedisUrlTest, ClusterWithSeveralSeeds) {
  Result<RedisUrl> url = ParseRedisUrl("rediscluster://node1:7001,node2,[::1]:7003?ns=kb");
  ASSERT_TRUE(url.ok());
  EXPECT_TRUE(url->cluster());
  EXPECT_FALSE(url->tls);
  ASSERT_EQ(url->nodes.size(), 3u);
  EXPECT_EQ(url->nodes[1].port, 6379);
  EXPECT_EQ(url->nodes[2].ToString(), "[::1]:7003");
  EXPECT_EQ(url->ns, "kb");
  EXPECT_EQ(url->Redacted(), "rediscluster://node1:7001,node2:6379,[::1]:7003?ns=kb");
  EXPECT_EQ(ParseRedisUrl("rediscluster://node1:7001/1").status().message(),
            "database is not supported for redis cluster");
  EXPECT_TRUE(ParseRedisUrl("rediscluster://node1:7001/").ok());
}

TEST(RedisUrlTest, SentinelInLettucesForm) {
  Result<RedisUrl> url = ParseRedisUrl("redis-sentinel://:pw@s1,s2:26380,s3:26381/2?ns=kb#my%20primary");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->mode, RedisUrl::Mode::kSentinel);
  EXPECT_FALSE(url->tls);
  ASSERT_EQ(url->nodes.size(), 3u);
  EXPECT_EQ(url->nodes[0].port, 26379);  // the sentinel's default port
  EXPECT_EQ(url->nodes[1].port, 26380);
  EXPECT_EQ(url->primary_name, "my primary");
  EXPECT_EQ(url->db, 2);
  EXPECT_EQ(url->password, "pw");
  EXPECT_EQ(url->Redacted(), "redis-sentinel://:xxxxx@s1:26379,s2:26380,s3:26381/2?ns=kb#my primary");
  // Lettuce also takes the name as a query parameter.
  Result<RedisUrl> query = ParseRedisUrl("rediss-sentinel://s1?sentinelMasterId=mymaster&ns=kb");
  ASSERT_TRUE(query.ok());
  EXPECT_TRUE(query->tls);
  EXPECT_EQ(query->primary_name, "mymaster");
  EXPECT_EQ(query->ns, "kb");
  EXPECT_FALSE(ParseRedisUrl("redis-sentinel://s1:26379/0?ns=kb").ok());  // no name
}

TEST(RedisUrlTest, Errors) {
  for (const char* bad : {"http://h", "h:6379", "redis://h:notaport", "redis://h:0", "redis://h:70000",
                          "redis://h/x", "redis://h/-1", "redis://u:%zz@h", "redis://[::1", "redis://a:b:c",
                          "redis://h1,h2", "rediscluster://h1,h2:0", "redis-sentinel://s1#%zz"}) {
    EXPECT_FALSE(ParseRedisUrl(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseRedisUrl("redis://" + std::string(RedisUrl::kMaxLength, 'h')).ok());
  std::string many = "rediscluster://h";
  for (size_t i = 0; i < RedisUrl::kMaxNodes; ++i) many += ",h";
  EXPECT_EQ(ParseRedisUrl(many).status().message(), "too many hosts in the Redis URL");
}

// Redis Cluster's specification gives these values.
TEST(HashSlotTest, SpecificationValuesAndHashTags) {
  EXPECT_EQ(HashSlot("123456789"), 0x31C3);  // the CRC16 check value
  EXPECT_EQ(HashSlot("foo"), 12182);
  EXPECT_EQ(HashSlot("{user1000}.following"), HashSlot("user1000"));
  EXPECT_EQ(HashSlot("foo{}{bar}"), HashSlot("foo{}{bar}"));  // an empty tag hashes the whole key
  EXPECT_NE(HashSlot("foo{}{bar}"), HashSlot("bar"));
  EXPECT_EQ(HashSlot("{kb:id:7}:watermark"), HashSlot("kb:id:7"));  // the lease's two keys share a slot
}

TEST(ErrorReplyTest, WhatDropsTheConnection) {
  EXPECT_EQ(ClassifyErrorReply("READONLY You can't write against a read only replica."),
            ErrorReplyKind::kNotWritable);
  EXPECT_EQ(ClassifyErrorReply("LOADING Redis is loading the dataset in memory"), ErrorReplyKind::kNotWritable);
  EXPECT_EQ(ClassifyErrorReply("MASTERDOWN Link with MASTER is down"), ErrorReplyKind::kNotWritable);
  EXPECT_EQ(ClassifyErrorReply("UNBLOCKED force unblock from blocking operation"), ErrorReplyKind::kNotWritable);
  EXPECT_EQ(ClassifyErrorReply("CLUSTERDOWN The cluster is down"), ErrorReplyKind::kClusterUnavailable);
  EXPECT_EQ(ClassifyErrorReply("TRYAGAIN Multiple keys request during rehashing"),
            ErrorReplyKind::kClusterUnavailable);
  EXPECT_EQ(ClassifyErrorReply("MOVED 3999 127.0.0.1:6381"), ErrorReplyKind::kMoved);
  EXPECT_EQ(ClassifyErrorReply("ASK 3999 127.0.0.1:6381"), ErrorReplyKind::kAsk);
  for (const char* own : {"ERR Error running script", "WRONGPASS invalid username-password pair", "NOAUTH",
                          "READONLYX", "", "ERR unknown command 'ROLE'"}) {
    EXPECT_EQ(ClassifyErrorReply(own), ErrorReplyKind::kCommand) << own;
    EXPECT_FALSE(DropsConnection(ClassifyErrorReply(own))) << own;
  }
  EXPECT_TRUE(DropsConnection(ErrorReplyKind::kNotWritable));
  EXPECT_TRUE(DropsConnection(ErrorReplyKind::kClusterUnavailable));
}

TEST(ReplyTest, CommandsAreArraysOfBulkStrings) {
  std::string wire;
  AppendCommand({"SET", "k", ""}, &wire);
  EXPECT_EQ(wire, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
}

// Replies split at every byte parse the same; what is not RESP is refused.
TEST(ReplyTest, ReaderTakesEverySplitAndRefusesGarbage) {
  const std::string wire = "*2\r\n:7\r\n$5\r\nhello\r\n-READONLY no\r\n";
  ReplyReader reader;
  std::vector<RedisReply> replies;
  for (const char c : wire) {
    ASSERT_TRUE(reader.Feed(&c, 1));
    RedisReply reply;
    while (reader.Pop(&reply) == ReplyReader::Next::kReply) replies.push_back(reply);
  }
  ASSERT_EQ(replies.size(), 2u);
  ASSERT_EQ(replies[0].elements.size(), 2u);
  EXPECT_EQ(replies[0].elements[0].integer, 7);
  EXPECT_EQ(replies[0].elements[1].str, "hello");
  EXPECT_TRUE(replies[1].is_error());
  EXPECT_EQ(replies[1].str, "READONLY no");

  ReplyReader broken;
  RedisReply reply;
  ASSERT_TRUE(broken.Feed("?what\r\n", 7));
  EXPECT_EQ(broken.Pop(&reply), ReplyReader::Next::kBroken);
}

// A peer that claims (or sends) a reply past the limit is cut off at the
// limit, not buffered: memory stays bounded by what we chose.
TEST(ReplyTest, AReplyPastTheLimitIsRefused) {
  ReplyReader reader;
  std::string header("$");  // appended: GCC 12 warns (-Wrestrict, falsely) on a + chain
  header.append(std::to_string(ReplyReader::kMaxReplyBytes * 4)).append("\r\n");
  ASSERT_TRUE(reader.Feed(header.data(), header.size()));
  RedisReply reply;
  EXPECT_EQ(reader.Pop(&reply), ReplyReader::Next::kNeedMore);
  const std::string chunk(64 * 1024, 'x');
  size_t fed = header.size();
  bool refused = false;
  while (fed <= ReplyReader::kMaxReplyBytes + chunk.size()) {
    if (!reader.Feed(chunk.data(), chunk.size())) {
      refused = true;
      break;
    }
    fed += chunk.size();
  }
  EXPECT_TRUE(refused);
  EXPECT_LE(fed, ReplyReader::kMaxReplyBytes);
}

}  // namespace
}  // namespace katsubushi::redis
