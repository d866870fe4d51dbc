// katsubushi::Client over TLS against a TLS server in this process (OpenSSL,
// one thread per connection, contexts from tls::MakeServerContext as the
// real fronts build them): IDs over tls:// and https://, the chain checked
// against the CA file, the name checked (and overridden), mutual TLS, a
// handshake that stalls bounded by the attempt's deadline, a plaintext
// server answering a TLS client failing at its first bytes, and garbage in
// a TLS record failing at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "katsubushi/client/client.h"
#include "katsubushi/client/connection.h"
#include "katsubushi/tls/certificate_store.h"
#include "katsubushi/tls/tls_server.h"
#include "tls_test_identity.h"

namespace katsubushi {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using tls::testing::Identity;
using tls::testing::MakeIdentity;
using tls::testing::Write;

// How long a test server's connection waits for a request before it gives
// up (a test that forgot it must not hang).
constexpr int kServerReceiveTimeoutSeconds = 5;

enum class Speaks { kMemcache, kHttp };
enum class Behaviour {
  kTls,        // handshake, then answer requests with IDs
  kPlaintext,  // answer the first bytes in plaintext ("ERROR", "400"), then close
  kCloseAtOnce,// close at the first byte, as our memcached front does to a TLS client
  kStall,      // accept and never answer
  kGarbage,    // answer with a TLS record header and garbage in it, then wait
};

// A loopback server: one thread accepting, one per connection; IDs count up
// from 1000. Stopped (every socket shut down, every thread joined) by the
// destructor.
class TestServer {
 public:
  TestServer(tls::ServerContext context, Speaks speaks, Behaviour behaviour)
      : context_(std::move(context)), speaks_(speaks), behaviour_(behaviour) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t length = sizeof(address);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~TestServer() {
    stop_ = true;
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : connections_) t.join();
    ::close(listen_fd_);
  }

  int port() const { return port_; }
  int handshakes() const { return handshakes_; }
  int refused() const { return refused_; }

 private:
  void Accept() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      timeval timeout{kServerReceiveTimeoutSeconds, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      std::lock_guard lock(mu_);
      fds_.push_back(fd);
      connections_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    char buf[4096];
    switch (behaviour_) {
      case Behaviour::kStall:
        while (!stop_ && ::recv(fd, buf, sizeof(buf), 0) > 0) {
        }
        break;
      case Behaviour::kCloseAtOnce:
        (void)::recv(fd, buf, sizeof(buf), 0);
        break;
      case Behaviour::kPlaintext: {
        (void)::recv(fd, buf, sizeof(buf), 0);
        const std::string answer = speaks_ == Speaks::kMemcache
                                       ? "ERROR\r\n"
                                       : "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
        break;
      }
      case Behaviour::kGarbage: {
        (void)::recv(fd, buf, sizeof(buf), 0);
        // A handshake record (22, TLS 1.0) whose message is nonsense.
        const char record[] = "\x16\x03\x01\x00\x08garbage!";
        (void)::send(fd, record, sizeof(record) - 1, MSG_NOSIGNAL);
        while (!stop_ && ::recv(fd, buf, sizeof(buf), 0) > 0) {
        }
        break;
      }
      case Behaviour::kTls: ServeTls(fd); break;
    }
    ::shutdown(fd, SHUT_RDWR);  // closed by the destructor, after every thread ended
  }

  void ServeTls(int fd) {
    SSL* ssl = SSL_new(context_.get());
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
      ++refused_;
      ERR_clear_error();
      SSL_free(ssl);
      return;
    }
    // With TLS 1.3 a refused client certificate shows only after the
    // handshake: the client's first request then fails.
    std::string request;
    char buf[4096];
    while (true) {
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) {
        if (request.empty() && SSL_get_error(ssl, n) == SSL_ERROR_SSL) ++refused_;
        break;
      }
      if (request.empty() && handshakes_counted_.insert_if_new(fd)) ++handshakes_;
      request.append(buf, static_cast<size_t>(n));
      const std::string end = speaks_ == Speaks::kMemcache ? "\r\n" : "\r\n\r\n";
      const size_t at = request.find(end);
      if (at == std::string::npos) continue;
      const std::string answer = Answer(request.substr(0, at));
      request.erase(0, at + end.size());
      if (SSL_write(ssl, answer.data(), static_cast<int>(answer.size())) <= 0) break;
    }
    ERR_clear_error();
    SSL_free(ssl);
  }

  // "get id" / "get 0 1 2", or "GET /id" / "GET /ids?n=3".
  std::string Answer(const std::string& request) {
    if (speaks_ == Speaks::kMemcache) {
      std::vector<std::string> keys;
      size_t pos = 4;  // after "get "
      while (pos < request.size()) {
        const size_t space = request.find(' ', pos);
        keys.push_back(request.substr(pos, space - pos));
        pos = space == std::string::npos ? request.size() : space + 1;
      }
      std::string out;
      for (const std::string& key : keys) {
        const std::string id = std::to_string(next_id_++);
        out += "VALUE " + key + " 0 " + std::to_string(id.size()) + "\r\n" + id + "\r\n";
      }
      return out + "END\r\n";
    }
    size_t n = 1;
    if (const size_t q = request.find("?n="); q != std::string::npos) n = std::stoul(request.substr(q + 3));
    std::string body;
    for (size_t i = 0; i < n; ++i) body += (i ? "\n" : "") + std::to_string(next_id_++);
    return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }

  // Counts a handshake once per connection.
  struct CountedFds {
    std::mutex mu;
    std::vector<int> fds;
    bool insert_if_new(int fd) {
      std::lock_guard lock(mu);
      for (int f : fds) {
        if (f == fd) return false;
      }
      fds.push_back(fd);
      return true;
    }
  };

  const tls::ServerContext context_;
  const Speaks speaks_;
  const Behaviour behaviour_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshakes_{0};
  std::atomic<int> refused_{0};
  std::atomic<uint64_t> next_id_{1000};
  CountedFds handshakes_counted_;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;                  // guarded by mu_
  std::vector<std::thread> connections_;  // guarded by mu_
};

class ClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("client_tls_test." + std::to_string(::getpid()) + "." +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ca_ = MakeIdentity("test CA", 1, nullptr, true);
    other_ca_ = MakeIdentity("another CA", 2, nullptr, true);
    Write(dir_ / "ca.crt", ca_.cert_pem);
    Write(dir_ / "other-ca.crt", other_ca_.cert_pem);
    struct Leaf {
      const char* name;
      long serial;
      const Identity* issuer;
      const char* san;
    };
    for (const Leaf& leaf : {
             Leaf{"server", 0x1001, &ca_, "IP:127.0.0.1,DNS:kb.test"},
             Leaf{"dns-only", 0x1002, &ca_, "DNS:kb.test"},  // not the address dialled
             Leaf{"client", 0x2001, &ca_, "DNS:client.test"},
             Leaf{"stranger", 0x2002, &other_ca_, "DNS:client.test"},  // a client from another CA
         }) {
      const Identity id = MakeIdentity(leaf.name, leaf.serial, leaf.issuer, false, leaf.san);
      Write(dir_ / (std::string(leaf.name) + ".crt"), id.cert_pem);
      Write(dir_ / (std::string(leaf.name) + ".key"), id.key_pem);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const char* name) const { return (dir_ / name).string(); }

  // A server context as a front builds it: `cert` names the pair (server,
  // dns-only); `client_ca` asks for client certificates.
  tls::ServerContext Context(const std::string& cert, bool client_ca, const std::vector<std::string>& alpn) {
    std::string error;
    auto store = tls::CertificateStore::Open(
        {path((cert + ".crt").c_str()), path((cert + ".key").c_str()), client_ca ? path("ca.crt") : ""}, &error);
    EXPECT_NE(store, nullptr) << error;
    if (!store) return nullptr;
    tls::ServerContext context = tls::MakeServerContext(*store->current(), alpn, &error);
    EXPECT_NE(context, nullptr) << error;
    return context;
  }

  ClientOptions Options(const std::string& server) const {
    ClientOptions options;
    options.servers = {server};
    options.timeout = milliseconds(3000);
    options.attempt_timeout = milliseconds(1000);
    options.tls.ca_file = path("ca.crt");
    return options;
  }

  static std::unique_ptr<Client> OpenOrDie(const ClientOptions& options) {
    std::string why;
    auto opened = Client::Open(options, &why);
    EXPECT_TRUE(opened.ok()) << opened.status().message() << ": " << why;
    return opened.ok() ? std::move(opened).value() : nullptr;
  }

  static std::string Tls(int port) { return "tls://127.0.0.1:" + std::to_string(port); }
  static std::string Https(int port) { return "https://127.0.0.1:" + std::to_string(port); }

  fs::path dir_;
  Identity ca_, other_ca_;
};

TEST_F(ClientTlsTest, FetchesIdsOverTlsMemcacheAndReusesTheSession) {
  TestServer server(Context("server", false, {}), Speaks::kMemcache, Behaviour::kTls);
  auto client = OpenOrDie(Options(Tls(server.port())));
  ASSERT_NE(client, nullptr);
  std::string why;
  Result<uint64_t> id = client->Fetch(&why);
  ASSERT_TRUE(id.ok()) << why;
  EXPECT_EQ(*id, 1000u);
  Result<std::vector<uint64_t>> ids = client->FetchMulti(3, &why);
  ASSERT_TRUE(ids.ok()) << why;
  EXPECT_EQ(*ids, (std::vector<uint64_t>{1001, 1002, 1003}));
  EXPECT_EQ(server.handshakes(), 1);  // the pooled connection carried both
}

TEST_F(ClientTlsTest, FetchesIdsOverHttps) {
  TestServer server(Context("server", false, {"http/1.1"}), Speaks::kHttp, Behaviour::kTls);
  auto client = OpenOrDie(Options(Https(server.port()) + "/"));
  ASSERT_NE(client, nullptr);
  std::string why;
  Result<uint64_t> id = client->Fetch(&why);
  ASSERT_TRUE(id.ok()) << why;
  EXPECT_EQ(*id, 1000u);
  Result<std::vector<uint64_t>> ids = client->FetchMulti(2, &why);
  ASSERT_TRUE(ids.ok()) << why;
  EXPECT_EQ(*ids, (std::vector<uint64_t>{1001, 1002}));
  EXPECT_EQ(server.handshakes(), 1);
}

TEST_F(ClientTlsTest, RefusesAServerWhoseChainIsNotFromTheCaFile) {
  TestServer server(Context("server", false, {}), Speaks::kMemcache, Behaviour::kTls);
  ClientOptions options = Options(Tls(server.port()));
  options.tls.ca_file = path("other-ca.crt");
  auto client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  std::string why;
  Result<uint64_t> id = client->Fetch(&why);
  EXPECT_EQ(id.status(), client::kCertificateNotTrusted) << why;
  EXPECT_NE(why.find("server certificate not verified (unable to get local issuer certificate)"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find(Tls(server.port())), std::string::npos) << why;

  // Without a CA file the system's store is used, which has never heard of
  // the test CA either.
  options.tls.ca_file.clear();
  client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Fetch(&why).status(), client::kCertificateNotTrusted) << why;
}

TEST_F(ClientTlsTest, ChecksTheNameAndTakesAnOverride) {
  // The certificate names kb.test only; the client dials 127.0.0.1.
  TestServer server(Context("dns-only", false, {}), Speaks::kMemcache, Behaviour::kTls);
  ClientOptions options = Options(Tls(server.port()));
  auto client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  std::string why;
  EXPECT_EQ(client->Fetch(&why).status(), client::kCertificateNameMismatch) << why;
  EXPECT_NE(why.find("(IP address mismatch)"), std::string::npos) << why;

  options.tls.server_name = "other.test";
  client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Fetch(&why).status(), client::kCertificateNameMismatch) << why;
  EXPECT_NE(why.find("(hostname mismatch)"), std::string::npos) << why;

  options.tls.server_name = "kb.test";
  client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->Fetch(&why).ok()) << why;

  // skip_verify: neither the chain nor the name (what a load balancer does).
  options.tls = {};
  options.tls.skip_verify = true;
  client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->Fetch(&why).ok()) << why;
}

TEST_F(ClientTlsTest, MutualTlsNeedsACertificateFromTheServersCa) {
  TestServer server(Context("server", true, {}), Speaks::kMemcache, Behaviour::kTls);
  ClientOptions options = Options(Tls(server.port()));
  auto client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  std::string why;
  Result<uint64_t> id = client->Fetch(&why);
  EXPECT_FALSE(id.ok());
  EXPECT_NE(why.find("certificate required"), std::string::npos) << why;

  options.tls.cert_file = path("stranger.crt");
  options.tls.key_file = path("stranger.key");
  client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  EXPECT_FALSE(client->Fetch(&why).ok());
  EXPECT_NE(why.find("unknown ca"), std::string::npos) << why;
  // Two attempts per call, each refused by the server (which counts it just
  // after the client heard of it).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (server.refused() < 4 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(server.refused(), 4);

  options.tls.cert_file = path("client.crt");
  options.tls.key_file = path("client.key");
  client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  id = client->Fetch(&why);
  EXPECT_TRUE(id.ok()) << why;
  EXPECT_EQ(server.handshakes(), 1);
}

TEST_F(ClientTlsTest, AStalledHandshakeCostsOneAttemptTimeout) {
  TestServer server(nullptr, Speaks::kMemcache, Behaviour::kStall);
  ClientOptions options = Options(Tls(server.port()));
  options.attempt_timeout = milliseconds(300);
  auto client = OpenOrDie(options);
  ASSERT_NE(client, nullptr);
  std::string why;
  const auto start = std::chrono::steady_clock::now();
  Result<uint64_t> id = client->Fetch(&why);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(id.status(), client::kTimedOut) << why;
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(800));  // one attempt: a stalled server is left at once
}

TEST_F(ClientTlsTest, APlaintextServerFailsATlsClientAtItsFirstBytes) {
  for (const Speaks speaks : {Speaks::kMemcache, Speaks::kHttp}) {
    TestServer server(nullptr, speaks, Behaviour::kPlaintext);
    auto client = OpenOrDie(Options(speaks == Speaks::kMemcache ? Tls(server.port()) : Https(server.port())));
    ASSERT_NE(client, nullptr);
    std::string why;
    const auto start = std::chrono::steady_clock::now();
    Result<uint64_t> id = client->Fetch(&why);
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(250));
    EXPECT_EQ(id.status(), client::kNotTls) << why;
    const char* said = speaks == Speaks::kMemcache ? "the server answered \"ERROR\" (a plaintext port?)"
                                                   : "the server answered \"HTTP/1.1 400 Bad Request\"";
    EXPECT_NE(why.find(said), std::string::npos) << why;
  }
  // Our memcached front closes a TLS client at its first byte.
  TestServer server(nullptr, Speaks::kMemcache, Behaviour::kCloseAtOnce);
  auto client = OpenOrDie(Options(Tls(server.port())));
  ASSERT_NE(client, nullptr);
  std::string why;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client->Fetch(&why).status(), client::kTlsClosed) << why;
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(250));
  EXPECT_NE(why.find("at the TLS handshake (a plaintext port?)"), std::string::npos) << why;
}

TEST_F(ClientTlsTest, GarbageInATlsRecordFailsAtOnceWithOpenSslsReason) {
  TestServer server(nullptr, Speaks::kMemcache, Behaviour::kGarbage);
  auto client = OpenOrDie(Options(Tls(server.port())));
  ASSERT_NE(client, nullptr);
  std::string why;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client->Fetch(&why).status(), client::kTlsFailed) << why;
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(250));  // not the attempt timeout
  EXPECT_NE(why.find("TLS failed (error:"), std::string::npos) << why;
}

TEST_F(ClientTlsTest, OpenRefusesTlsFilesThatDoNotLoad) {
  ClientOptions options = Options("tls://127.0.0.1:1");
  options.tls.ca_file = path("missing.crt");
  std::string why;
  auto opened = Client::Open(options, &why);
  EXPECT_EQ(opened.status(), kBadTlsFiles);
  EXPECT_NE(why.find("missing.crt"), std::string::npos) << why;

  // A named file is loaded even when no server is TLS, so a typo shows at once.
  options.servers = {"127.0.0.1:1"};
  options.tls.ca_file.clear();
  options.tls.cert_file = path("client.crt");
  EXPECT_EQ(Client::Open(options, &why).status(), kBadTlsFiles);
  EXPECT_NE(why.find("needs both a certificate file and a key file"), std::string::npos) << why;
}

}  // namespace
}  // namespace katsubushi
