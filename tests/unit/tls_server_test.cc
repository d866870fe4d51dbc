// The server side of TLS without sockets: the certificate store's reload
// rules over real files (rename, symlink swap, half-written and mismatched
// files), handshakes between OpenSSL endpoints over a BIO pair against
// contexts MakeServerContext built, each failure named the way
// katsubushi_tls_handshake_failures_total names it, and TlsPipe, the
// session the fronts run, fed a byte at a time.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "katsubushi/tls/certificate_store.h"
#include "katsubushi/tls/tls_pipe.h"
#include "katsubushi/tls/tls_server.h"
#include "tls_test_identity.h"

namespace katsubushi::tls {
namespace {

namespace fs = std::filesystem;

using testing::Identity;
using testing::MakeIdentity;
using testing::Write;

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tls_server_test." + std::to_string(::getpid()) + "." +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ca_ = MakeIdentity("test CA", 1, nullptr, true);
    other_ca_ = MakeIdentity("another CA", 2, nullptr, true);
    server_ = MakeIdentity("127.0.0.1", 0x1001, &ca_, false);
    Write(cert_path(), server_.cert_pem);
    Write(key_path(), server_.key_pem);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path cert_path() const { return dir_ / "tls.crt"; }
  fs::path key_path() const { return dir_ / "tls.key"; }
  TlsServerFiles files() const { return {cert_path(), key_path(), ""}; }

  fs::path dir_;
  Identity ca_, other_ca_, server_;
};

std::unique_ptr<CertificateStore> OpenOrFail(const TlsServerFiles& files) {
  std::string error;
  auto store = CertificateStore::Open(files, &error);
  EXPECT_NE(store, nullptr) << error;
  return store;
}

TEST_F(TlsServerTest, OpensAndDescribesTheLeaf) {
  auto store = OpenOrFail(files());
  ASSERT_NE(store, nullptr);
  const auto set = store->current();
  EXPECT_EQ(set->generation, 1u);
  EXPECT_EQ(store->generation(), 1u);
  EXPECT_EQ(set->serial_hex, "1001");
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(static_cast<double>(set->not_after_unix), static_cast<double>(now + 86400), 120.0);
}

TEST_F(TlsServerTest, RefusesAtStartWhatDoesNotLoad) {
  std::string error;
  EXPECT_EQ(CertificateStore::Open({cert_path(), cert_path(), ""}, &error), nullptr);
  EXPECT_NE(error.find("no PEM private key in"), std::string::npos) << error;
  const Identity stranger = MakeIdentity("127.0.0.1", 7, &ca_, false);
  Write(dir_ / "stranger.key", stranger.key_pem);
  EXPECT_EQ(CertificateStore::Open({cert_path(), dir_ / "stranger.key", ""}, &error), nullptr);
  EXPECT_NE(error.find("is not the key of the certificate"), std::string::npos) << error;
  EXPECT_EQ(CertificateStore::Open({dir_ / "missing.crt", key_path(), ""}, &error), nullptr);
  EXPECT_NE(error.find("cannot read"), std::string::npos) << error;
}

TEST_F(TlsServerTest, ReloadsWhenTheBytesChangeAndKeepsTheOldSetWhenTheNewOneDoesNotLoad) {
  auto store = OpenOrFail(files());
  ASSERT_NE(store, nullptr);
  int loaded = 0, failed = 0;
  store->SetListener([&](const CertificateSet* set, const std::string&) { set ? ++loaded : ++failed; });
  EXPECT_EQ(store->Reload(), CertificateStore::ReloadResult::kUnchanged);

  // The certificate renewed before its key: the pair does not match, the old
  // set stays, and the same bad bytes are reported once however often polled.
  const Identity renewed = MakeIdentity("127.0.0.1", 0x1002, &ca_, false);
  Write(cert_path(), renewed.cert_pem);
  EXPECT_EQ(store->Reload(), CertificateStore::ReloadResult::kFailed);
  EXPECT_EQ(store->Reload(), CertificateStore::ReloadResult::kFailed);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(store->current()->serial_hex, "1001");
  EXPECT_EQ(store->generation(), 1u);

  Write(key_path(), renewed.key_pem);
  EXPECT_EQ(store->Reload(), CertificateStore::ReloadResult::kLoaded);
  EXPECT_EQ(store->current()->serial_hex, "1002");
  EXPECT_EQ(store->generation(), 2u);
  EXPECT_EQ(loaded, 1);

  // Garbage, then a missing file: kept, and the server keeps the last good set.
  Write(cert_path(), "-----BEGIN CERTIFICATE-----\nnot base64\n");
  EXPECT_EQ(store->Reload(), CertificateStore::ReloadResult::kFailed);
  fs::remove(cert_path());
  EXPECT_EQ(store->Reload(), CertificateStore::ReloadResult::kFailed);
  EXPECT_EQ(store->current()->serial_hex, "1002");
  EXPECT_EQ(failed, 3);
}

// Kubernetes secrets and cert-manager: tls.crt -> ..data/tls.crt, and ..data
// a symlink swapped atomically to a new timestamped directory.
TEST_F(TlsServerTest, SeesTheSymlinkSwapOfAKubernetesSecret) {
  const fs::path v1 = dir_ / "..2026_12_01", v2 = dir_ / "..2026_12_02", mount = dir_ / "mount";
  fs::create_directories(v1);
  fs::create_directories(v2);
  fs::create_directories(mount);
  Write(v1 / "tls.crt", server_.cert_pem);
  Write(v1 / "tls.key", server_.key_pem);
  const Identity renewed = MakeIdentity("127.0.0.1", 0x2002, &ca_, false);
  Write(v2 / "tls.crt", renewed.cert_pem);
  Write(v2 / "tls.key", renewed.key_pem);
  fs::create_directory_symlink(v1, mount / "..data");
  fs::create_symlink("..data/tls.crt", mount / "tls.crt");
  fs::create_symlink("..data/tls.key", mount / "tls.key");

  auto store = OpenOrFail({mount / "tls.crt", mount / "tls.key", ""});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->current()->serial_hex, "1001");
  fs::create_directory_symlink(v2, mount / "..data_tmp");
  fs::rename(mount / "..data_tmp", mount / "..data");
  EXPECT_EQ(store->Reload(), CertificateStore::ReloadResult::kLoaded);
  EXPECT_EQ(store->current()->serial_hex, "2002");
}

TEST_F(TlsServerTest, TheWatcherLoadsAChangeWithoutBeingAsked) {
  auto store = OpenOrFail(files());
  ASSERT_NE(store, nullptr);
  store->Watch(std::chrono::milliseconds(20));
  const Identity renewed = MakeIdentity("127.0.0.1", 0x1003, &ca_, false);
  // Key first, then certificate: in between the pair does not match.
  Write(key_path(), renewed.key_pem);
  Write(cert_path(), renewed.cert_pem);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (store->generation() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(store->current()->serial_hex, "1003");
  store->StopWatching();
}

// A client and a server SSL joined by a BIO pair; Handshake() runs both sides
// until both finish or one fails.
class Handshake {
 public:
  Handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx) {
    BIO *client_bio = nullptr, *server_bio = nullptr;
    BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
    server_ = SSL_new(server_ctx);
    SSL_set_bio(server_, server_bio, server_bio);
    SSL_set_accept_state(server_);
    if (client_ctx != nullptr) {
      client_ = SSL_new(client_ctx);
      SSL_set_bio(client_, client_bio, client_bio);
      SSL_set_connect_state(client_);
    } else {
      raw_client_ = client_bio;
    }
  }
  ~Handshake() {
    SSL_free(server_);
    if (client_) SSL_free(client_);
    if (raw_client_) BIO_free(raw_client_);
  }

  SSL* client() { return client_; }
  SSL* server() { return server_; }
  // Bytes a non-TLS client sends.
  void Send(const std::string& bytes) {
    BIO_write(raw_client_, bytes.data(), static_cast<int>(bytes.size()));
  }
  void CloseClient() { BIO_shutdown_wr(raw_client_ ? raw_client_ : SSL_get_wbio(client_)); }

  // True when the server finished; otherwise server_error is its SSL_get_error.
  bool Run() {
    for (int round = 0; round < 20; ++round) {
      if (client_ != nullptr && !SSL_is_init_finished(client_)) {
        const int r = SSL_do_handshake(client_);
        if (r <= 0) {
          const int e = SSL_get_error(client_, r);
          if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) client_failed_ = true;
        }
      }
      const int r = SSL_do_handshake(server_);
      if (r == 1 && (client_ == nullptr || SSL_is_init_finished(client_) || client_failed_)) return true;
      if (r <= 0) {
        server_error = SSL_get_error(server_, r);
        if (server_error != SSL_ERROR_WANT_READ && server_error != SSL_ERROR_WANT_WRITE) return false;
        if (client_ == nullptr || client_failed_) {
          if (BIO_ctrl_pending(SSL_get_rbio(server_)) == 0 && round > 2) return false;
        }
      }
    }
    return false;
  }

  int server_error = 0;

 private:
  SSL* server_ = nullptr;
  SSL* client_ = nullptr;
  BIO* raw_client_ = nullptr;
  bool client_failed_ = false;
};

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

CtxPtr ClientContext(const Identity* trust, const Identity* client_identity = nullptr, int max_version = 0) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (trust != nullptr) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), trust->cert.get());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  if (client_identity != nullptr) {
    SSL_CTX_use_certificate(ctx.get(), client_identity->cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), client_identity->key.get());
  }
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  return ctx;
}

TEST_F(TlsServerTest, HandshakesAndNegotiatesAlpn) {
  auto store = OpenOrFail(files());
  ASSERT_NE(store, nullptr);
  std::string error;
  ServerContext server = MakeServerContext(*store->current(), {"http/1.1"}, &error);
  ASSERT_NE(server, nullptr) << error;
  CtxPtr client = ClientContext(&ca_);
  static const unsigned char kOffer[] = "\x02h2\x08http/1.1";
  SSL_CTX_set_alpn_protos(client.get(), kOffer, sizeof kOffer - 1);
  Handshake h(server.get(), client.get());
  ASSERT_TRUE(h.Run()) << h.server_error;
  EXPECT_EQ(SSL_version(h.server()), TLS1_3_VERSION);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_length = 0;
  SSL_get0_alpn_selected(h.server(), &alpn, &alpn_length);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(alpn), alpn_length), "http/1.1");
}

TEST_F(TlsServerTest, NamesEveryHandshakeFailure) {
  const Identity client_identity = MakeIdentity("client", 0x3001, &ca_, false);
  const Identity stranger_identity = MakeIdentity("stranger", 0x3002, &other_ca_, false);
  Write(dir_ / "ca.crt", ca_.cert_pem);
  auto store = OpenOrFail({cert_path(), key_path(), dir_ / "ca.crt"});
  ASSERT_NE(store, nullptr);
  std::string error;
  ServerContext mutual = MakeServerContext(*store->current(), {}, &error);
  ASSERT_NE(mutual, nullptr) << error;
  auto plain_store = OpenOrFail(files());
  ServerContext server = MakeServerContext(*plain_store->current(), {}, &error);
  ASSERT_NE(server, nullptr) << error;

  auto fails_as = [](Handshake& h) {
    EXPECT_FALSE(h.Run());
    return ClassifyHandshakeFailure(h.server(), h.server_error);
  };
  {  // mutual TLS with a good client certificate: accepted
    CtxPtr client = ClientContext(&ca_, &client_identity);
    Handshake h(mutual.get(), client.get());
    EXPECT_TRUE(h.Run()) << h.server_error;
  }
  {  // none
    CtxPtr client = ClientContext(&ca_);
    Handshake h(mutual.get(), client.get());
    EXPECT_EQ(fails_as(h), TlsHandshakeFailure::kClientCertificate);
  }
  {  // one from another CA
    CtxPtr client = ClientContext(&ca_, &stranger_identity);
    Handshake h(mutual.get(), client.get());
    EXPECT_EQ(fails_as(h), TlsHandshakeFailure::kClientCertificate);
  }
  {  // a plaintext memcached client
    Handshake h(server.get(), nullptr);
    h.Send("get id\r\n");
    EXPECT_EQ(fails_as(h), TlsHandshakeFailure::kNotTls);
  }
  {  // a plaintext HTTP client
    Handshake h(server.get(), nullptr);
    h.Send("GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(fails_as(h), TlsHandshakeFailure::kNotTls);
  }
  {  // a handshake record of garbage
    Handshake h(server.get(), nullptr);
    std::string garbage = std::string("\x16\x03\x01\x00\x40", 5) + std::string(64, '\xA5');
    h.Send(garbage);
    const TlsHandshakeFailure reason = fails_as(h);
    EXPECT_TRUE(reason == TlsHandshakeFailure::kOther || reason == TlsHandshakeFailure::kNotTls)
        << TlsHandshakeFailureName(reason);
  }
  {  // a client that does not trust us
    CtxPtr client = ClientContext(&other_ca_);
    Handshake h(server.get(), client.get());
    EXPECT_EQ(fails_as(h), TlsHandshakeFailure::kRejectedByClient);
  }
  {  // a client that stops at TLS 1.1
    CtxPtr client = ClientContext(nullptr, nullptr, TLS1_1_VERSION);
    SSL_CTX_set_security_level(client.get(), 0);
    Handshake h(server.get(), client.get());
    EXPECT_EQ(fails_as(h), TlsHandshakeFailure::kUnsupported);
  }
  {  // a client that closes after connecting
    Handshake h(server.get(), nullptr);
    h.CloseClient();
    EXPECT_EQ(fails_as(h), TlsHandshakeFailure::kClosed);
  }
}

TEST_F(TlsServerTest, ASourceRebuildsItsContextOnlyWhenTheGenerationMoves) {
  auto store = OpenOrFail(files());
  ASSERT_NE(store, nullptr);
  std::string error;
  auto source = ServerContextSource::Make(*store, {}, &error);
  ASSERT_NE(source, nullptr) << error;
  const ServerContext first = source->Current();
  EXPECT_EQ(source->Current(), first);
  const Identity renewed = MakeIdentity("127.0.0.1", 0x1004, &ca_, false);
  Write(cert_path(), renewed.cert_pem);
  Write(key_path(), renewed.key_pem);
  ASSERT_EQ(store->Reload(), CertificateStore::ReloadResult::kLoaded);
  const ServerContext second = source->Current();
  EXPECT_NE(second, first);
  X509* served = SSL_CTX_get0_certificate(second.get());
  EXPECT_EQ(X509_cmp(served, renewed.cert.get()), 0);
}


// TlsPipe, the server session the fronts run: a real client over memory,
// with the client's bytes handed over one at a time (every split of every
// record), a reply larger than a record, the peer's close_notify, and
// garbage failing with its reason (and, for a malformed ClientHello, an
// alert for the peer).
class PipeClient {
 public:
  explicit PipeClient(SSL_CTX* ctx) : ssl_(SSL_new(ctx)) {
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_connect_state(ssl_);
  }
  ~PipeClient() { SSL_free(ssl_); }
  SSL* ssl() { return ssl_; }

  // Everything the client wrote, into the pipe a byte at a time, running
  // `step` after each byte; the statuses seen before the last byte.
  template <typename Step>
  std::vector<TlsPipe::Status> FeedByteByByte(TlsPipe& pipe, Step step) {
    std::vector<TlsPipe::Status> before_last;
    char byte;
    while (BIO_read(out_, &byte, 1) == 1) {
      const std::span<char> room = pipe.InputRoom();
      EXPECT_FALSE(room.empty());
      room[0] = byte;
      pipe.CommitInput(1);
      const TlsPipe::Status status = step();
      if (BIO_ctrl_pending(out_) > 0) before_last.push_back(status);
      last_ = status;
    }
    return before_last;
  }
  // What the pipe wrote, to the client.
  void Take(TlsPipe& pipe) {
    BIO_write(in_, pipe.output().data(), static_cast<int>(pipe.output().size()));
    pipe.ConsumeOutput(pipe.output().size());
  }
  TlsPipe::Status last() const { return last_; }

 private:
  SSL* ssl_;
  BIO* in_;
  BIO* out_;
  TlsPipe::Status last_ = TlsPipe::Status::kWantInput;
};

TEST_F(TlsServerTest, APipeTakesRecordsSplitAnywhereAndRepliesInRecords) {
  auto store = OpenOrFail(files());
  ASSERT_NE(store, nullptr);
  std::string error;
  ServerContext server = MakeServerContext(*store->current(), {}, &error);
  ASSERT_NE(server, nullptr) << error;
  CtxPtr client_ctx = ClientContext(&ca_);
  PipeClient client(client_ctx.get());
  auto pipe = TlsPipe::NewServer(server.get());
  ASSERT_NE(pipe, nullptr);

  // The handshake: the server wants input until a whole flight is in.
  for (int round = 0; round < 4 && !SSL_is_init_finished(client.ssl()); ++round) {
    SSL_do_handshake(client.ssl());
    for (TlsPipe::Status s : client.FeedByteByByte(*pipe, [&] { return pipe->Handshake(); })) {
      EXPECT_EQ(s, TlsPipe::Status::kWantInput);
    }
    client.Take(*pipe);
  }
  ASSERT_TRUE(SSL_is_init_finished(client.ssl()));
  EXPECT_EQ(client.last(), TlsPipe::Status::kDone);

  // A request split at every byte arrives whole, once.
  const std::string request = "get id\r\n";
  ASSERT_EQ(SSL_write(client.ssl(), request.data(), static_cast<int>(request.size())), 8);
  char plain[64];
  size_t got = 0;
  for (TlsPipe::Status s : client.FeedByteByByte(*pipe, [&] { return pipe->Read(plain, &got); })) {
    EXPECT_EQ(s, TlsPipe::Status::kWantInput);
  }
  ASSERT_EQ(client.last(), TlsPipe::Status::kDone);
  EXPECT_EQ(std::string(plain, got), request);
  EXPECT_EQ(pipe->Read(plain, &got), TlsPipe::Status::kWantInput);

  // A reply of many records: all of it written, all of it read back.
  std::string reply(100'000, 'x');
  for (size_t i = 0; i < reply.size(); i += 997) reply[i] = static_cast<char>('a' + i % 26);
  size_t written = 0;
  ASSERT_EQ(pipe->Write(reply, &written), TlsPipe::Status::kDone);
  EXPECT_EQ(written, reply.size());
  EXPECT_GT(pipe->output().size(), reply.size());
  client.Take(*pipe);
  EXPECT_TRUE(pipe->output().empty());
  std::string echoed(reply.size(), '\0');
  size_t read = 0;
  while (read < reply.size()) {
    size_t n = 0;
    ASSERT_EQ(SSL_read_ex(client.ssl(), echoed.data() + read, reply.size() - read, &n), 1);
    read += n;
  }
  EXPECT_EQ(echoed, reply);

  // The client's close_notify ends the session.
  SSL_shutdown(client.ssl());
  client.FeedByteByByte(*pipe, [&] { return pipe->Read(plain, &got); });
  EXPECT_EQ(client.last(), TlsPipe::Status::kClosed);
}

TEST_F(TlsServerTest, APipeFailsAGarbageClientHelloWithItsReasonAndAnAlert) {
  auto store = OpenOrFail(files());
  ASSERT_NE(store, nullptr);
  std::string error;
  ServerContext server = MakeServerContext(*store->current(), {}, &error);
  ASSERT_NE(server, nullptr) << error;
  for (const std::string& garbage : {std::string("get id\r\n"), std::string("\x16\x03\x01\x00\x05\x02zzzz", 10)}) {
    auto pipe = TlsPipe::NewServer(server.get());
    ASSERT_NE(pipe, nullptr);
    const std::span<char> room = pipe->InputRoom();
    std::copy(garbage.begin(), garbage.end(), room.begin());
    pipe->CommitInput(garbage.size());
    EXPECT_EQ(pipe->Handshake(), TlsPipe::Status::kFailed) << garbage;
    EXPECT_EQ(ClassifyHandshakeFailure(pipe->ssl(), pipe->failure().ssl_error, pipe->failure().code),
              garbage[0] == 'g' ? TlsHandshakeFailure::kNotTls : TlsHandshakeFailure::kOther)
        << garbage;
    EXPECT_FALSE(pipe->failure().text.empty());
    if (garbage[0] == 'g') continue;  // not a TLS record: OpenSSL has no record to answer in
    ASSERT_FALSE(pipe->output().empty());
    EXPECT_EQ(pipe->output()[0], '\x15');  // an alert record
  }
}

}  // namespace
}  // namespace katsubushi::tls
