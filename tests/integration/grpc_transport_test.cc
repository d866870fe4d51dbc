// The gRPC front's own transport pieces, on real sockets over 127.0.0.1
// (GrpcChannelAcceptorTest runs gRPC, so TSan skips it with the other Grpc tests):
// ChannelAcceptor (its listener, gRPC's name for the channels it hands over,
// which ReplyCoalescer relies on, and its watch on them, which the stop relies
// on) and ReplyCoalescer's corking.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "grpc/channel_acceptor.h"
#include "grpc/reply_coalescer.h"
#include "katsubushi.grpc.pb.h"

namespace katsubushi::grpc_api {
namespace {

using namespace std::chrono_literals;

// A connected pair of TCP sockets on 127.0.0.1.
struct TcpPair {
  TcpPair() {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), length), 0);
    EXPECT_EQ(listen(listener, 1), 0);
    EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length), 0);
    client = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), length), 0);
    server = accept(listener, nullptr, nullptr);
    close(listener);
  }
  ~TcpPair() {
    close(client);
    close(server);
  }
  int client = -1;
  int server = -1;
};

bool Corked(int fd) {
  int value = 0;
  socklen_t length = sizeof value;
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, &length), 0);
  return value != 0;
}

std::string PeerOf(int fd) { return "fd:" + std::to_string(fd); }

TEST(ReplyCoalescerTest, DescriptorOfReadsOnlyGrpcsDescriptorPeers) {
  EXPECT_EQ(ReplyCoalescer::DescriptorOf("fd:7"), 7);
  EXPECT_EQ(ReplyCoalescer::DescriptorOf("fd:123"), 123);
  EXPECT_EQ(ReplyCoalescer::DescriptorOf("ipv4:127.0.0.1:5000"), -1);
  EXPECT_EQ(ReplyCoalescer::DescriptorOf("fd:"), -1);
  EXPECT_EQ(ReplyCoalescer::DescriptorOf("fd:-1"), -1);
  EXPECT_EQ(ReplyCoalescer::DescriptorOf("fd:12x"), -1);
  EXPECT_EQ(ReplyCoalescer::DescriptorOf("fd:99999999999999"), -1);
}

// The first reply of a batch leaves at once; the next ones are held until
// the batch ends, and never longer.
TEST(ReplyCoalescerTest, CorksFromTheSecondReplyUntilTheBatchEnds) {
  TcpPair pair;
  ReplyCoalescer coalescer;
  coalescer.BeforeReply(PeerOf(pair.server));
  EXPECT_FALSE(Corked(pair.server));
  coalescer.BeforeReply(PeerOf(pair.server));
  EXPECT_TRUE(Corked(pair.server));
  coalescer.Flush();
  EXPECT_FALSE(Corked(pair.server));
  // A new batch starts over: its first reply is not held.
  coalescer.BeforeReply(PeerOf(pair.server));
  EXPECT_FALSE(Corked(pair.server));
  coalescer.Flush();
}

// Bytes written while corked arrive once the batch is flushed.
TEST(ReplyCoalescerTest, HeldBytesArriveAtTheFlush) {
  TcpPair pair;
  ReplyCoalescer coalescer;
  coalescer.BeforeReply(PeerOf(pair.server));
  coalescer.BeforeReply(PeerOf(pair.server));
  ASSERT_EQ(write(pair.server, "abc", 3), 3);
  char buffer[8];
  EXPECT_EQ(recv(pair.client, buffer, sizeof buffer, MSG_DONTWAIT), -1);  // held
  coalescer.Flush();
  timeval timeout{1, 0};  // the kernel's own cork limit is 200 ms
  setsockopt(pair.client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(recv(pair.client, buffer, sizeof buffer, 0), 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);
}

// Many replies in one batch go out every kRepliesPerFlush, not all at the end.
TEST(ReplyCoalescerTest, LongBatchesSendEveryFewReplies) {
  TcpPair pair;
  ReplyCoalescer coalescer;
  coalescer.BeforeReply(PeerOf(pair.server));  // sent at once
  for (int i = 0; i < ReplyCoalescer::kRepliesPerFlush; ++i) {
    coalescer.BeforeReply(PeerOf(pair.server));
    ASSERT_EQ(write(pair.server, "x", 1), 1);
  }
  char buffer[64];
  EXPECT_EQ(recv(pair.client, buffer, sizeof buffer, MSG_DONTWAIT), -1);  // all held
  coalescer.BeforeReply(PeerOf(pair.server));  // one more: the held ones go
  timeval timeout{1, 0};
  setsockopt(pair.client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(recv(pair.client, buffer, sizeof buffer, 0), ReplyCoalescer::kRepliesPerFlush);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_TRUE(Corked(pair.server));  // and it goes on holding
  coalescer.Flush();
}

TEST(GrpcChannelAcceptorTest, RefusesWhatIsNotAnAddressLiteral) {
  ChannelAcceptor acceptor;
  EXPECT_EQ(acceptor.Listen("localhost", 0), std::errc::invalid_argument);
  EXPECT_EQ(acceptor.Listen("300.1.1.1", 0), std::errc::invalid_argument);
}

TEST(GrpcChannelAcceptorTest, APortInUseIsAnError) {
  ChannelAcceptor first;
  ASSERT_FALSE(first.Listen("127.0.0.1", 0));
  ChannelAcceptor second;
  EXPECT_EQ(second.Listen("127.0.0.1", first.port()), std::errc::address_in_use);
}

// Records the peer gRPC reports for each call.
class PeerRecorder final : public katsubushi::Stats::Service {
 public:
  grpc::Status Get(grpc::ServerContext* context, const StatsRequest*, StatsResponse*) override {
    std::lock_guard lock(mutex_);
    peer_ = context->peer();
    return grpc::Status::OK;
  }
  std::string peer() {
    std::lock_guard lock(mutex_);
    return peer_;
  }

 private:
  std::mutex mutex_;
  std::string peer_;
};

// ReplyCoalescer finds a call's socket by the name gRPC gives a channel
// added by descriptor. If a gRPC release renamed it, replies would silently
// stop being coalesced: this is where that shows.
TEST(GrpcChannelAcceptorTest, GrpcNamesEachChannelByItsAcceptedDescriptor) {
  for (const std::string address : {"127.0.0.1", "[::1]"}) {
    SCOPED_TRACE(address);
    ChannelAcceptor acceptor;
    const std::error_code listened = acceptor.Listen(address, 0);
    if (listened && address == "[::1]") GTEST_SKIP() << "no IPv6 loopback";
    ASSERT_FALSE(listened) << listened.message();
    PeerRecorder recorder;
    grpc::ServerBuilder builder;
    builder.RegisterService(&recorder);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    ASSERT_TRUE(server);
    acceptor.Start(*server);

    auto channel = grpc::CreateChannel(address + ":" + std::to_string(acceptor.port()),
                                       grpc::InsecureChannelCredentials());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 5s);
    StatsResponse response;
    ASSERT_TRUE(katsubushi::Stats::NewStub(channel)->Get(&context, StatsRequest(), &response).ok());

    const int fd = ReplyCoalescer::DescriptorOf(recorder.peer());
    ASSERT_GE(fd, 0) << recorder.peer();
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length), 0);
    const uint16_t port = local.ss_family == AF_INET6
                              ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
                              : ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    EXPECT_EQ(port, acceptor.port());  // the connection accepted on our listener

    acceptor.Stop();
    server->Shutdown(std::chrono::system_clock::now() + 1s);
  }
}

// A raw TCP client of `acceptor`, connected once gRPC has taken the
// connection: gRPC's server speaks first (its SETTINGS frame).
int ConnectedClient(const ChannelAcceptor& acceptor) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(acceptor.port());
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 5000), 1);
  char frame[256];
  EXPECT_GT(recv(fd, frame, sizeof frame, 0), 0);
  return fd;
}

// The stop waits for gRPC to end each connection (goaway.h): the acceptor
// must see it end, whichever side ends it, and not before.
TEST(GrpcChannelAcceptorTest, SeesGrpcEndEachChannel) {
  ChannelAcceptor acceptor;
  ASSERT_FALSE(acceptor.Listen("127.0.0.1", 0));
  PeerRecorder service;  // a server needs a service to start
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  acceptor.Start(*server);
  const int first = ConnectedClient(acceptor);
  const int second = ConnectedClient(acceptor);
  acceptor.Stop();
  EXPECT_EQ(acceptor.open_channels(), 2u);
  EXPECT_FALSE(acceptor.AwaitChannelsClosed(std::chrono::steady_clock::now() + 50ms));

  // Its client leaves: gRPC reads the end and closes its side.
  close(first);
  const auto start = std::chrono::steady_clock::now();
  while (acceptor.open_channels() > 1 && std::chrono::steady_clock::now() - start < 5s) {
    acceptor.AwaitChannelsClosed(std::chrono::steady_clock::now() + 10ms);
  }
  EXPECT_EQ(acceptor.open_channels(), 1u);

  // gRPC ends it: the server's shutdown closes every channel left.
  server->Shutdown(std::chrono::system_clock::now());
  EXPECT_TRUE(acceptor.AwaitChannelsClosed(std::chrono::steady_clock::now() + 5s));
  EXPECT_EQ(acceptor.open_channels(), 0u);
  close(second);
}

// A client that has gone quiet is closed by the stop rather than waited for.
TEST(GrpcChannelAcceptorTest, ClosesQuietChannels) {
  ChannelAcceptor acceptor;
  ASSERT_FALSE(acceptor.Listen("127.0.0.1", 0));
  PeerRecorder service;  // a server needs a service to start
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  acceptor.Start(*server);
  const int client = ConnectedClient(acceptor);
  acceptor.Stop();
  EXPECT_EQ(acceptor.CloseQuietChannels(10s), 0u);  // not quiet for that long yet
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(acceptor.CloseQuietChannels(10ms), 1u);
  EXPECT_TRUE(acceptor.AwaitChannelsClosed(std::chrono::steady_clock::now() + 5s));
  // The client sees the end (after whatever gRPC had sent), within 2 s.
  const timeval two_seconds{2, 0};
  ASSERT_EQ(setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds), 0);
  char buffer[256];
  ssize_t n = 1;
  for (int i = 0; i < 100 && n > 0; ++i) n = recv(client, buffer, sizeof buffer, 0);
  EXPECT_EQ(n, 0);
  close(client);
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace katsubushi::grpc_api
