// katsubushi::Generator, the embedding API, with a static worker id (the
// leased path runs against a real redis-server in e2e/test_c_abi_lease.py).
#include "katsubushi/embedded/generator.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

namespace katsubushi {
namespace {

std::unique_ptr<Generator> OpenStatic(uint32_t worker_id, bool js_safe = false) {
  GeneratorConfig config;
  config.worker_id = worker_id;
  config.js_safe_id = js_safe;
  Result<std::unique_ptr<Generator>> opened = Generator::Open(config);
  EXPECT_TRUE(opened.ok()) << opened.status().message();
  return opened.ok() ? std::move(opened).value() : nullptr;
}

TEST(EmbeddedGeneratorTest, StaticWorkerIdIssuesIncreasingIdsThatDecodeToIt) {
  auto generator = OpenStatic(7);
  ASSERT_NE(generator, nullptr);
  ASSERT_EQ(*generator->WorkerId(), 7u);
  uint64_t previous = 0;
  for (int i = 0; i < 10000; ++i) {
    const Result<uint64_t> id = generator->Next();
    ASSERT_TRUE(id.ok());
    ASSERT_GT(*id, previous);
    previous = *id;
  }
  const IdParts parts = generator->Decode(previous);
  EXPECT_EQ(parts.worker_id, 7u);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(parts.unix_millis, now_ms);
  EXPECT_GT(parts.unix_millis, now_ms - 10'000);
}

TEST(EmbeddedGeneratorTest, NextNGivesConsecutiveIdsOrAnErrorWithoutAllocatingTheClaim) {
  auto generator = OpenStatic(9);
  ASSERT_NE(generator, nullptr);
  const Result<std::vector<uint64_t>> ids = generator->NextN(size_t{1000});
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 1000u);
  EXPECT_EQ(std::set<uint64_t>(ids->begin(), ids->end()).size(), 1000u);
  for (size_t i = 1; i < ids->size(); ++i) ASSERT_GT((*ids)[i], (*ids)[i - 1]);

  EXPECT_EQ(generator->NextN(size_t{0}).status(), kBadIdCount);
  EXPECT_EQ(generator->NextN(GeneratorCore::kMaxIdsPerCall + 1).status(), kBadIdCount);
  EXPECT_EQ(generator->NextN(SIZE_MAX).status(), kBadIdCount);
  uint64_t span_ids[16];
  ASSERT_TRUE(generator->NextN(span_ids).ok());
  EXPECT_GT(span_ids[0], ids->back());
}

TEST(EmbeddedGeneratorTest, ConfigMustNameExactlyOneWorkerIdSource) {
  GeneratorConfig neither;
  EXPECT_EQ(Generator::Open(neither).status(), kBadGeneratorConfig);
  GeneratorConfig both;
  both.worker_id = 3;
  both.redis_url = "redis://127.0.0.1:1/0";
  EXPECT_EQ(Generator::Open(both).status(), kBadGeneratorConfig);
  GeneratorConfig too_big;
  too_big.worker_id = 64;
  too_big.js_safe_id = true;  // 6 worker bits
  EXPECT_EQ(Generator::Open(too_big).status().code(), StatusCode::kInvalidArgument);
  GeneratorConfig bad_url;
  bad_url.redis_url = "http://127.0.0.1/";
  EXPECT_EQ(Generator::Open(bad_url).status().code(), StatusCode::kInvalidArgument);
  GeneratorConfig bad_ttl;
  bad_ttl.redis_url = "redis://127.0.0.1:1/0";
  bad_ttl.lease_ttl = std::chrono::milliseconds(500);
  EXPECT_EQ(Generator::Open(bad_ttl).status().code(), StatusCode::kInvalidArgument);
}

TEST(EmbeddedGeneratorTest, LeasedConfigOpensWithoutNetworkAndFailsClearlyWithoutRedis) {
  GeneratorConfig config;
  config.redis_url = "redis://127.0.0.1:1/0?ns=unit";  // nothing listens on port 1
  Result<std::unique_ptr<Generator>> opened = Generator::Open(config);
  ASSERT_TRUE(opened.ok()) << opened.status().message();  // Open does no I/O
  Generator& generator = **opened;
  EXPECT_FALSE(generator.WorkerId().ok());
  const Result<uint64_t> id = generator.Next();
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kUnavailable) << id.status().message();
}

TEST(EmbeddedGeneratorTest, ClosedGeneratorRefuses) {
  auto generator = OpenStatic(11);
  ASSERT_NE(generator, nullptr);
  ASSERT_TRUE(generator->Next().ok());
  ASSERT_TRUE(generator->Close().ok());
  EXPECT_EQ(generator->Next().status(), kGeneratorClosed);
  EXPECT_TRUE(generator->Close().ok());  // twice is fine
}

TEST(EmbeddedGeneratorTest, ForkedChildGetsAnErrorAndTheParentGoesOn) {
  auto generator = OpenStatic(12);
  ASSERT_NE(generator, nullptr);
  ASSERT_TRUE(generator->Next().ok());
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Exit codes tell the parent what the child saw; no gtest in the child.
    const Result<uint64_t> id = generator->Next();
    if (id.ok()) _exit(1);
    if (id.status() != kForked) _exit(2);
    if (generator->WorkerId().status() != kForked) _exit(3);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(generator->Next().ok());
}

}  // namespace
}  // namespace katsubushi
