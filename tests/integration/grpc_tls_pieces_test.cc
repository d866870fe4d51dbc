// The gRPC front's TLS pieces that need no handshake: PeerSockets (gRPC's
// peer names of TLS connections back to their descriptors, pruned when a
// descriptor number comes back) and the parser of gRPC's handshake failure
// log line. The handshakes themselves are tested end to end
// (tests/e2e/test_grpc_tls.py).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "grpc/grpc_log.h"
#include "grpc/peer_sockets.h"

namespace katsubushi::grpc_api {
namespace {

class CountingBackend : public Backend {
 public:
  Result<uint64_t> NextId() override { return uint64_t{0}; }
  Status NextIds(std::span<uint64_t>) override { return {}; }
  StatsFields GetStats() override { return {}; }
  void ObserveDuration(std::chrono::nanoseconds) override {}
  Status Health() override { return {}; }
  void CountTlsHandshake() override { ++handshakes; }
  int handshakes = 0;
};

sockaddr_storage V4(const char* address, uint16_t port) {
  sockaddr_storage s{};
  auto& sin = reinterpret_cast<sockaddr_in&>(s);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET, address, &sin.sin_addr), 1);
  return s;
}

sockaddr_storage V6(const char* address, uint16_t port) {
  sockaddr_storage s{};
  auto& sin6 = reinterpret_cast<sockaddr_in6&>(s);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET6, address, &sin6.sin6_addr), 1);
  return s;
}

TEST(PeerSocketsTest, ReadsGrpcsPeerNamesOfBothFamilies) {
  EXPECT_EQ(PeerSockets::KeyOf("ipv4:127.0.0.1:5000"), PeerSockets::KeyOf(V4("127.0.0.1", 5000)));
  EXPECT_EQ(PeerSockets::KeyOf("ipv6:[::1]:5000"), PeerSockets::KeyOf(V6("::1", 5000)));
  EXPECT_EQ(PeerSockets::KeyOf("ipv6:%5B::1%5D:5000"), PeerSockets::KeyOf(V6("::1", 5000)));
  // A dual-stack listener sees IPv4 clients as IPv4-mapped IPv6; gRPC names
  // them as IPv4: one key.
  EXPECT_EQ(PeerSockets::KeyOf("ipv4:127.0.0.1:5000"), PeerSockets::KeyOf(V6("::ffff:127.0.0.1", 5000)));
  EXPECT_NE(PeerSockets::KeyOf("ipv4:127.0.0.1:5000"), PeerSockets::KeyOf(V4("127.0.0.1", 5001)));
  for (const char* bad : {"fd:7", "unix:/tmp/x", "ipv4:127.0.0.1", "ipv4:127.0.0.1:", "ipv4:127.0.0.1:70000",
                          "ipv4:1.2.3:5", "ipv6:[::1]:5x", ""}) {
    EXPECT_FALSE(PeerSockets::KeyOf(bad).has_value()) << bad;
  }
}

TEST(PeerSocketsTest, FindsTheDescriptorAndCountsTheFirstReplyOnly) {
  CountingBackend backend;
  PeerSockets peers(backend);
  peers.Add(9, V6("::ffff:127.0.0.1", 40000));
  peers.Add(10, V4("10.0.0.2", 40000));
  EXPECT_EQ(peers.Find("ipv4:127.0.0.1:40000"), 9);
  EXPECT_EQ(peers.Find("ipv4:127.0.0.1:40000"), 9);
  EXPECT_EQ(peers.Find("ipv4:10.0.0.2:40000"), 10);
  EXPECT_EQ(backend.handshakes, 2);
  EXPECT_EQ(peers.Find("ipv4:127.0.0.1:40001"), -1);
  EXPECT_EQ(peers.Find("fd:9"), -1);
}

TEST(PeerSocketsTest, ADescriptorAcceptedAgainDropsItsOldPeer) {
  CountingBackend backend;
  PeerSockets peers(backend);
  peers.Add(9, V4("127.0.0.1", 40000));
  peers.Add(9, V4("127.0.0.1", 40002));  // the first connection closed, its number reused
  EXPECT_EQ(peers.Find("ipv4:127.0.0.1:40000"), -1);
  EXPECT_EQ(peers.Find("ipv4:127.0.0.1:40002"), 9);
  // A new connection from an address seen before: its own descriptor, and
  // its handshake counted again.
  peers.Add(11, V4("127.0.0.1", 40002));
  EXPECT_EQ(peers.Find("ipv4:127.0.0.1:40002"), 11);
  EXPECT_EQ(backend.handshakes, 2);
}

TEST(GrpcLogTest, ReadsTheOpenSslCodeOfGrpcsHandshakeFailureLine) {
  unsigned long code = 0;
  EXPECT_TRUE(ParseHandshakeFailure(
      "src/core/tsi/ssl_transport_security.cc",
      "Handshake failed with fatal error SSL_ERROR_SSL: error:0A0000C7:SSL routines::peer did not return a "
      "certificate.",
      &code));
  EXPECT_EQ(code, 0x0A0000C7UL);
  EXPECT_TRUE(ParseHandshakeFailure(
      "ssl_transport_security.cc",
      "Handshake failed with fatal error SSL_ERROR_SYSCALL: error:00000000:lib(0)::reason(0).", &code));
  EXPECT_EQ(code, 0UL);
  // Any other line, or the same words from another file, is not one.
  EXPECT_FALSE(ParseHandshakeFailure("ssl_transport_security.cc", "Invalid cert chain file.", &code));
  EXPECT_FALSE(ParseHandshakeFailure("chttp2_server.cc",
                                     "Handshake failed with fatal error SSL_ERROR_SSL: error:0A0000C7:x", &code));
  EXPECT_FALSE(ParseHandshakeFailure("ssl_transport_security.cc",
                                     "Handshake failed with fatal error SSL_ERROR_SSL: error:zz:", &code));
}

}  // namespace
}  // namespace katsubushi::grpc_api
