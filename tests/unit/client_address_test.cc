#include "katsubushi/client/server_address.h"

#include <gtest/gtest.h>

namespace katsubushi::client {
namespace {

TEST(ServerAddress, MemcacheTcp) {
  auto a = ParseServerAddress("127.0.0.1:11212");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->transport, Transport::kMemcacheTcp);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 11212);
  auto v6 = ParseServerAddress("[::1]:7");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7);
  EXPECT_TRUE(ParseServerAddress("katsubushi.internal:11212").ok());
}

TEST(ServerAddress, Unix) {
  auto a = ParseServerAddress("unix:/run/kb.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->transport, Transport::kMemcacheUnix);
  EXPECT_EQ(a->unix_path, "/run/kb.sock");
  EXPECT_FALSE(ParseServerAddress("unix:").ok());
  EXPECT_FALSE(ParseServerAddress("unix:/" + std::string(200, 'x')).ok());
}

TEST(ServerAddress, HttpPrefixes) {
  struct Case {
    const char* text;
    const char* prefix;
    uint16_t port;
  };
  for (const Case& c : {Case{"http://h:8080", "/", 8080}, Case{"http://h", "/", 80},
                        Case{"http://h:1/", "/", 1}, Case{"http://h:1/kb", "/kb/", 1},
                        Case{"http://h:1/kb/", "/kb/", 1}, Case{"http://[::1]:2/a/b", "/a/b/", 2}}) {
    auto a = ParseServerAddress(c.text);
    ASSERT_TRUE(a.ok()) << c.text;
    EXPECT_EQ(a->transport, Transport::kHttp);
    EXPECT_EQ(a->http_prefix, c.prefix) << c.text;
    EXPECT_EQ(a->port, c.port) << c.text;
  }
}

TEST(ServerAddress, ParsesTlsAddresses) {
  auto memcache = ParseServerAddress("tls://kb.internal:11212");
  ASSERT_TRUE(memcache.ok());
  EXPECT_EQ(memcache->transport, Transport::kMemcacheTcp);
  EXPECT_TRUE(memcache->tls);
  EXPECT_EQ(memcache->host, "kb.internal");
  EXPECT_EQ(memcache->port, 11212);
  auto v6 = ParseServerAddress("tls://[::1]:5");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_TRUE(v6->tls);
  auto https = ParseServerAddress("https://kb.internal/kb");
  ASSERT_TRUE(https.ok());
  EXPECT_EQ(https->transport, Transport::kHttp);
  EXPECT_TRUE(https->tls);
  EXPECT_EQ(https->port, 443);
  EXPECT_EQ(https->http_prefix, "/kb/");
  auto https_port = ParseServerAddress("https://10.0.0.1:8443");
  ASSERT_TRUE(https_port.ok());
  EXPECT_EQ(https_port->port, 8443);
  // The plaintext forms stay plaintext.
  for (const char* plain : {"h:1", "http://h:1", "unix:/x"}) {
    auto a = ParseServerAddress(plain);
    ASSERT_TRUE(a.ok()) << plain;
    EXPECT_FALSE(a->tls) << plain;
  }
}

TEST(ServerAddress, Rejects) {
  for (const char* bad : {"", "host", "host:", ":11212", "host:0", "host:65536", "host:12x", "host:-1",
                          "::1:11212", "[::1]", "[::1:5", "tcp://h:1", "http://", "https://",
                          "tls://h", "tls://:1", "tls://h:1/x", "tls://unix:/x", "TLS://h:1", "https://h:1/a?b",
                          "http://h:1/a?b", "http://h:1/a b", "http://h:1/%20", "ho st:1", "h/x:1",
                          "user@h:1"}) {
    EXPECT_EQ(ParseServerAddress(bad).status(), kBadServerAddress) << bad;
  }
}

}  // namespace
}  // namespace katsubushi::client
