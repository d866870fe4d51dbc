#include <gtest/gtest.h>

#include <random>
#include <set>

#include "memcache_test_util.h"

namespace katsubushi::memcache {
namespace {

using testing::ExpectSameForEverySplit;
using testing::Feed;
using testing::Service;

std::string Value(std::string_view key, uint32_t n) {
  const std::string id = Service::Id(n);
  return "VALUE " + std::string(key) + " 0 " + std::to_string(id.size()) + "\r\n" + id + "\r\n";
}

TEST(MemcacheTextTest, GetOneKeyIsGoKatsubushiBytes) {
  const auto t = ExpectSameForEverySplit("get new\r\n");
  EXPECT_EQ(t.out, Value("new", 0) + "END\r\n");
  EXPECT_FALSE(t.closed);
}

TEST(MemcacheTextTest, GetManyKeysIssuesConsecutiveIds) {
  const auto t = ExpectSameForEverySplit("get id1 id2 id3\r\n");
  EXPECT_EQ(t.out, Value("id1", 0) + Value("id2", 1) + Value("id3", 2) + "END\r\n");
}

TEST(MemcacheTextTest, GetsHasNoCasField) {
  // go-katsubushi's own client sends gets and wants exactly four fields.
  const auto t = ExpectSameForEverySplit("gets k\r\n");
  EXPECT_EQ(t.out, Value("k", 0) + "END\r\n");
}

TEST(MemcacheTextTest, BareNewlineAndTabsAndCaseAreAccepted) {
  const auto t = ExpectSameForEverySplit("GET\ta  b\nGeTs c\r\n");
  EXPECT_EQ(t.out, Value("a", 0) + Value("b", 1) + "END\r\n" + Value("c", 2) + "END\r\n");
}

TEST(MemcacheTextTest, PipelinedCommandsAnsweredInOrder) {
  const auto t = ExpectSameForEverySplit("get a\r\nversion\r\nbogus\r\n\r\nget\r\nget b\r\n");
  EXPECT_EQ(t.out, Value("a", 0) + "END\r\n" + "VERSION 9.9.9\r\n" + "ERROR\r\n" + "ERROR\r\n" +
                       "ERROR\r\n" + Value("b", 1) + "END\r\n");
  EXPECT_FALSE(t.closed);
}

TEST(MemcacheTextTest, QuitClosesAndIgnoresTheRest) {
  const auto t = ExpectSameForEverySplit("version\r\nquit\r\nget a\r\n");
  EXPECT_EQ(t.out, "VERSION 9.9.9\r\n");
  EXPECT_TRUE(t.closed);
}

TEST(MemcacheTextTest, PartialLineWaits) {
  Service service;
  const auto t = Feed(service, {"get a"});
  EXPECT_EQ(t.out, "");
  EXPECT_EQ(t.pending, 5u);
}

// The idle timeout restarts only on completed requests, so a request that
// is still arriving must not count, however many reads brought its bytes.
TEST(MemcacheTextTest, APartialCommandIsNotACompletedCommand) {
  Service service;
  auto t = Feed(service, {"get a", " b", "\r", "\n"});
  EXPECT_EQ(t.completed, (std::vector<size_t>{0, 0, 0, 1}));
  t = Feed(service, {"mn\r\nversion\nm", "n", "\r\n", "mg"});
  EXPECT_EQ(t.completed, (std::vector<size_t>{2, 0, 1, 0}));
  EXPECT_EQ(t.out, "MN\r\nVERSION 9.9.9\r\nMN\r\n");
  // Refused lines complete too: an empty one, and an over-long one once its
  // newline is in (not when the refusal is sent).
  t = Feed(service, {"\n", std::string(kMaxLineLength + 1, 'x'), "yyy", "\nmn\r\n"});
  EXPECT_EQ(t.completed, (std::vector<size_t>{1, 0, 0, 2}));
  EXPECT_EQ(t.out, "ERROR\r\nCLIENT_ERROR line too long\r\nMN\r\n");
  // Every split of a pipeline reports the same total (ExpectSameForEverySplit
  // checks it); one byte at a time, only the reads that end a line count.
  const std::string pipeline = "get a b\r\nmg k v\r\nstats\r\nquit\r\n";
  ExpectSameForEverySplit(pipeline);
  std::vector<std::string> bytes;
  for (char c : pipeline) bytes.emplace_back(1, c);
  t = Feed(service, bytes);
  ASSERT_EQ(t.completed.size(), pipeline.size());
  for (size_t i = 0; i < pipeline.size(); ++i) {
    EXPECT_EQ(t.completed[i], pipeline[i] == '\n' ? 1u : 0u) << "byte " << i;
  }
  EXPECT_TRUE(t.closed);
}

// A 1000-key get needs ~24 KiB of scratch; the session keeps what common gets
// need and gives the rest back once the large one is answered.
TEST(MemcacheTextTest, ScratchOfALargeGetIsReleasedAfterIt) {
  Service service;
  const std::unique_ptr<Session> session = NewSession('g', service.context);
  std::string out;
  std::string small = "get";
  for (int i = 0; i < 100; ++i) small += " k";
  session->Process(small + "\r\n", &out);
  const size_t warm = session->retained_bytes();
  EXPECT_GT(warm, 0u);  // kept: the next 100-key get allocates nothing
  EXPECT_LE(warm, kRetainedScratchBytes);

  std::string large = "get";
  for (size_t i = 0; i < kMaxKeysPerGet; ++i) large += " k";
  out.clear();
  const ProcessResult r = session->Process(large + "\r\n", &out);
  EXPECT_EQ(r.completed, 1u);
  EXPECT_TRUE(out.ends_with(Value("k", 100 + kMaxKeysPerGet - 1) + "END\r\n"));
  EXPECT_LE(session->retained_bytes(), kRetainedScratchBytes);

  out.clear();
  session->Process(small + "\r\n", &out);  // and it still serves the next one
  EXPECT_TRUE(out.ends_with(Value("k", 100 + kMaxKeysPerGet + 99) + "END\r\n"));
}

TEST(MemcacheTextTest, StatsFieldsInGoOrder) {
  const auto t = ExpectSameForEverySplit("get a b\r\nget\r\nstats\r\n");
  ASSERT_NE(t.out.find("STAT pid "), std::string::npos) << t.out;
  const std::string stats = t.out.substr(t.out.find("STAT pid "));
  // pid, uptime and time vary; the rest is exact.
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos < stats.size()) {
    const size_t eol = stats.find("\r\n", pos);
    names.push_back(stats.substr(pos, eol - pos));
    pos = eol + 2;
  }
  ASSERT_EQ(names.size(), 10u) << stats;
  EXPECT_EQ(names[0].rfind("STAT pid ", 0), 0u);
  EXPECT_EQ(names[1].rfind("STAT uptime ", 0), 0u);
  EXPECT_EQ(names[2].rfind("STAT time ", 0), 0u);
  EXPECT_EQ(names[3], "STAT version 9.9.9");
  EXPECT_EQ(names[4], "STAT curr_connections 0");
  EXPECT_EQ(names[5], "STAT total_connections 0");
  EXPECT_EQ(names[6], "STAT cmd_get 2");  // a get without keys still counts, as in Go
  EXPECT_EQ(names[7], "STAT get_hits 2");
  EXPECT_EQ(names[8], "STAT get_misses 0");
  EXPECT_EQ(names[9], "END");
}

TEST(MemcacheTextTest, KeyOverLimitIsClientError) {
  const std::string ok_key(kMaxKeyLength, 'k');
  const std::string long_key(kMaxKeyLength + 1, 'k');
  Service service;
  const auto t = Feed(service, {"get " + long_key + "\r\nget " + ok_key + "\r\n"});
  EXPECT_EQ(t.out, "CLIENT_ERROR key too long\r\n" + Value(ok_key, 0) + "END\r\n");
}

TEST(MemcacheTextTest, TooManyKeysIsClientErrorAndIssuesNothing) {
  std::string line = "get";
  for (int i = 0; i < 100'000; ++i) line += " k";
  Service service;
  // 200 KB is over the line limit too; a limit on keys must hold on its own.
  std::string within_line_limit = "get";
  for (size_t i = 0; i <= kMaxKeysPerGet; ++i) within_line_limit += " k";
  auto t = Feed(service, {within_line_limit + "\r\nget a\r\n"});
  EXPECT_EQ(t.out, "CLIENT_ERROR too many keys\r\n" + Value("a", 0) + "END\r\n");
  t = Feed(service, {line + "\r\n"});
  EXPECT_EQ(t.out, "CLIENT_ERROR line too long\r\n");
  EXPECT_EQ(service.stats.Snapshot().get_hits, 1u);
}

TEST(MemcacheTextTest, MaxKeysIsServed) {
  std::string line = "get";
  for (size_t i = 0; i < kMaxKeysPerGet; ++i) line += " k";
  Service service;
  const auto t = Feed(service, {line + "\r\n"});
  EXPECT_EQ(service.stats.Snapshot().get_hits, kMaxKeysPerGet);
  EXPECT_TRUE(t.out.ends_with(Value("k", kMaxKeysPerGet - 1) + "END\r\n"));
}

TEST(MemcacheTextTest, MegabyteLineWithoutNewlineStaysBounded) {
  Service service;
  std::vector<std::string> chunks(64, std::string(16 * 1024, 'x'));  // 1 MiB, no newline
  chunks.push_back("still the same line\r\nget a\r\n");
  const auto t = Feed(service, chunks);
  EXPECT_LE(t.max_pending, kMaxLineLength + 16 * 1024);
  EXPECT_EQ(t.out, "CLIENT_ERROR line too long\r\n" + Value("a", 0) + "END\r\n");
  EXPECT_FALSE(t.closed);
}

TEST(MemcacheTextTest, GeneratorFailureIsServerErrorAndCountedAsMisses) {
  const auto t = ExpectSameForEverySplit("get a b\r\nget c\r\n", [](Service& s) {
    ASSERT_TRUE(s.generator->Next().ok());      // the generator is at kTestMillis...
    s.clock.SetMillis(testing::kTestMillis - 1000);  // ...and the clock a second behind
  });
  EXPECT_EQ(t.out, "SERVER_ERROR clock moved backwards\r\nSERVER_ERROR clock moved backwards\r\n");
  Service service;
  ASSERT_TRUE(service.generator->Next().ok());
  service.clock.SetMillis(testing::kTestMillis - 1000);
  Feed(service, {"get a b\r\n"});
  const StatsSnapshot s = service.stats.Snapshot();
  EXPECT_EQ(s.get_misses, 2u);
  EXPECT_EQ(s.cmd_get, 1u);
}

TEST(MemcacheTextTest, MetaGet) {
  const std::string id0 = Service::Id(0), id1 = Service::Id(1), id2 = Service::Id(2);
  const std::string len = std::to_string(id0.size());
  const auto t = ExpectSameForEverySplit(
      "mg foo v\r\nmg bar k v Oab12 s f t\r\nmg baz\r\nmn\r\nmg\r\nmg x zz\r\n");
  EXPECT_EQ(t.out, "VA " + len + "\r\n" + id0 + "\r\n" +
                       "VA " + len + " kbar Oab12 s" + len + " f0 t-1\r\n" + id1 + "\r\n" +
                       "HD\r\n" + "MN\r\n" + "CLIENT_ERROR bad command line format\r\n" +
                       "CLIENT_ERROR invalid flag\r\n");
}

// A flag list over kMaxMetaFlags is refused whole: before the limit, flags
// past the tokenizer's cap (1001 tokens) were dropped without a word, so
// `mg a <1000 v> k` answered without the key it asked for.
TEST(MemcacheTextTest, MetaGetRefusesTooManyFlags) {
  std::string at_limit = "mg a";
  for (size_t i = 0; i < kMaxMetaFlags - 1; ++i) at_limit += " v";
  at_limit += " k\r\n";
  std::string over = "mg a";
  for (int i = 0; i < 1000; ++i) over += " v";
  over += " k\r\n";
  Service service;
  const auto t = Feed(service, {at_limit, over});
  EXPECT_EQ(t.out, "VA 19 ka\r\n" + Service::Id(0) + "\r\nCLIENT_ERROR too many flags\r\n");
}

TEST(MemcacheTextTest, MetaGetQuietStillAnswersHits) {
  const auto t = ExpectSameForEverySplit("mg a v q\r\nmn\r\n");
  EXPECT_EQ(t.out, "VA 19\r\n" + Service::Id(0) + "\r\nMN\r\n");
}

TEST(MemcacheTextTest, RandomBytesNeverBreakTheInvariants) {
  std::mt19937 rng(20261122);
  for (int round = 0; round < 200; ++round) {
    Service service;
    std::vector<std::string> chunks;
    for (int c = 0; c < 20; ++c) {
      std::string chunk(rng() % 4096, '\0');
      for (char& ch : chunk) {
        // Mostly printable with some newlines, so that lines do get parsed.
        const uint32_t r = rng() % 100;
        ch = r < 5 ? '\n' : r < 10 ? ' ' : static_cast<char>(rng() % 256);
      }
      if (c == 0 && !chunk.empty() && static_cast<uint8_t>(chunk[0]) == 0x80) chunk[0] = 'g';
      chunks.push_back(chunk);
    }
    const auto t = Feed(service, chunks);
    EXPECT_LT(t.max_pending, kMaxPendingBytes);
  }
}

TEST(MemcacheTextTest, EveryIssuedIdIsDistinctAcrossManyGets) {
  Service service;
  service.clock.set_auto_advance(true);
  std::string input;
  for (int i = 0; i < 2000; ++i) input += "get a b c\r\n";
  const auto t = Feed(service, {input});
  std::set<std::string> ids;
  size_t pos = 0;
  while ((pos = t.out.find("\r\n", pos)) != std::string::npos) {
    pos += 2;
    const size_t eol = t.out.find("\r\n", pos);
    if (eol == std::string::npos) break;
    const std::string line = t.out.substr(pos, eol - pos);
    if (!line.empty() && line[0] >= '0' && line[0] <= '9') ids.insert(line);
  }
  EXPECT_EQ(ids.size(), 6000u);
}

}  // namespace
}  // namespace katsubushi::memcache

namespace katsubushi::memcache {
namespace {

// The multi-get writer increments decimal text for consecutive IDs; check it
// against to_chars across carries and a tick boundary.
TEST(MemcacheTextTest, MultiGetDigitsMatchTheIdsAcrossCarriesAndTicks) {
  Service service;
  service.clock.set_auto_advance(true);
  std::string line = "get";
  for (size_t i = 0; i < kMaxKeysPerGet; ++i) line += " k";
  std::string input;
  for (int i = 0; i < 10; ++i) input += line + "\r\n";  // 10,000 IDs: 3 tick boundaries
  const auto t = Feed(service, {input});
  size_t pos = 0, checked = 0;
  uint64_t previous = 0;
  while ((pos = t.out.find("VALUE k 0 ", pos)) != std::string::npos) {
    const size_t data = t.out.find("\r\n", pos) + 2;
    const size_t end = t.out.find("\r\n", data);
    const std::string text = t.out.substr(data, end - data);
    const uint64_t id = std::stoull(text);
    EXPECT_EQ(std::to_string(id), text);
    EXPECT_EQ(std::stoul(t.out.substr(pos + 10, data - 2 - pos - 10)), text.size());
    EXPECT_GT(id, previous);
    EXPECT_EQ(IdLayout::Default().WorkerIdOf(id), testing::kTestWorker);
    previous = id;
    pos = end;
    ++checked;
  }
  EXPECT_EQ(checked, 10 * kMaxKeysPerGet);
}

TEST(MemcacheTextTest, IncrementCarriesThroughNines) {
  // A generator at sequence ...4099 region is hard to force; instead feed IDs
  // whose decimal forms end in 9s by choosing the worker and tick.
  Service service;
  const uint64_t tick = static_cast<uint64_t>(IdLayout::Default().TickAt(testing::kTestMillis));
  // Find a sequence number at which the decimal ID ends in "99".
  uint32_t seq = 0;
  while (IdLayout::Default().Compose(tick, testing::kTestWorker, seq) % 100 != 98) ++seq;
  for (uint32_t i = 0; i < seq; ++i) ASSERT_TRUE(service.generator->Next().ok());
  const auto t = Feed(service, {"get a b c\r\n"});
  const uint64_t base = IdLayout::Default().Compose(tick, testing::kTestWorker, seq);
  EXPECT_NE(t.out.find(std::to_string(base) + "\r\n"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(std::to_string(base + 1) + "\r\n"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(std::to_string(base + 2) + "\r\n"), std::string::npos) << t.out;
}

}  // namespace
}  // namespace katsubushi::memcache
