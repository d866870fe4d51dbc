// A connection's buffers grow for a large request and shrink back after it,
// driven the way the socket loop drives them: reads into ReadRoom(), then
// Session::Process over pending(), then Consume().
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "memcache/connection_buffers.h"
#include "memcache_test_util.h"

namespace katsubushi::memcache {
namespace {

using testing::Service;

// A NOOP whose header announces a `body`-byte value (the largest request a
// client may send), followed by `tail`.
std::string Noop(size_t body) {
  std::string r(24, '\0');
  r[0] = static_cast<char>(0x80);
  r[1] = 0x0a;
  for (int i = 0; i < 4; ++i) r[8 + i] = static_cast<char>(body >> (24 - 8 * i));
  return r + std::string(body, 'v');
}

// Reads `bytes` into *input as a socket would (at most what ReadRoom offers
// each time) and processes after every read; returns the replies.
std::string Deliver(std::string_view bytes, InputBuffer* input, Session* session) {
  std::string out;
  while (!bytes.empty()) {
    const std::span<char> room = input->ReadRoom();
    EXPECT_GE(room.size(), kMinReadRoom);
    const size_t n = std::min(room.size(), bytes.size());
    std::memcpy(room.data(), bytes.data(), n);
    bytes.remove_prefix(n);
    input->Commit(n);
    const ProcessResult r = session->Process(input->pending(), &out);
    input->Consume(r.consumed);
  }
  return out;
}

TEST(MemcacheBuffersTest, InputBufferGrowsForALargeRequestAndShrinksOnceItIsDone) {
  Service service;
  const auto session = NewSession(0x80, service.context);
  InputBuffer input;
  EXPECT_EQ(input.capacity(), kInitialInputBytes);

  // Everything but the last byte of a maximal request: the buffer must hold it.
  const std::string large = Noop(kMaxBinaryBody);
  EXPECT_EQ(Deliver(std::string_view(large).substr(0, large.size() - 1), &input, session.get()), "");
  EXPECT_GE(input.capacity(), large.size() - 1);
  EXPECT_LE(input.capacity(), kMaxInputBytes);

  // The last byte completes it, and a few bytes of the next request follow
  // in the same read: the megabyte is given back although not all is drained.
  const std::string next = Noop(0);
  std::string last_read(1, large.back());
  last_read.append(next, 0, 10);
  EXPECT_EQ(Deliver(last_read, &input, session.get()).size(), kBinaryHeaderSize);  // the NOOP reply
  EXPECT_EQ(input.capacity(), kInitialInputBytes);
  EXPECT_EQ(input.pending(), next.substr(0, 10));  // the partial request survived the move

  EXPECT_EQ(Deliver(next.substr(10), &input, session.get()).size(), kBinaryHeaderSize);
  EXPECT_EQ(input.pending().size(), 0u);
  EXPECT_EQ(input.capacity(), kInitialInputBytes);
}

TEST(MemcacheBuffersTest, InputBufferUnderTheThresholdKeepsItsCapacity) {
  // Growth below kRetainedBufferBytes is kept: a connection that pipelines
  // moderately does not reallocate on every read.
  Service service;
  const auto session = NewSession(0x80, service.context);
  InputBuffer input;
  Deliver(Noop(kRetainedBufferBytes / 2), &input, session.get());
  const size_t grown = input.capacity();
  EXPECT_GT(grown, kInitialInputBytes);
  EXPECT_LE(grown, kRetainedBufferBytes);
  Deliver(Noop(0), &input, session.get());
  EXPECT_EQ(input.capacity(), grown);
}

TEST(MemcacheBuffersTest, OutputBufferIsReleasedAfterALargeBatchOnly) {
  std::string out;
  out.reserve(kRetainedBufferBytes / 2);
  out.assign(100, 'x');
  const size_t small = out.capacity();
  ResetOutput(&out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.capacity(), small);  // kept: no allocation per batch

  // A pipelined megabyte of `mn` gets a larger batch of replies.
  Service service;
  const auto session = NewSession('m', service.context);
  std::string input;
  while (input.size() < kMaxLineLength * 4) input += "mn\r\n";
  session->Process(input, &out);
  EXPECT_GT(out.capacity(), kRetainedBufferBytes);
  ResetOutput(&out);
  EXPECT_TRUE(out.empty());
  EXPECT_LE(out.capacity(), kRetainedBufferBytes);
}

}  // namespace
}  // namespace katsubushi::memcache
