// RESP on the wire: commands formatted as arrays of bulk strings, and replies
// parsed by hiredis's reader (hiredis is kept as the RESP parser only; the
// sockets and TLS are ours, transport.h).
//
// Thread safety: values; a ReplyReader has one owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;

namespace katsubushi::redis {

struct RedisReply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
};

using Args = std::initializer_list<std::string_view>;

// Appends `args` to `wire` as one RESP command.
void AppendCommand(Args args, std::string* wire);

class ReplyReader {
 public:
  // A reply larger than this is a broken peer, not a lease: the connection is
  // dropped rather than the buffer grown (ours are a few hundred bytes; a
  // CLUSTER SLOTS of a large cluster stays far below).
  static constexpr size_t kMaxReplyBytes = 1 << 20;

  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  // False when the bytes are not RESP or a reply grows past kMaxReplyBytes.
  bool Feed(const char* data, size_t size);
  enum class Next { kReply, kNeedMore, kBroken };
  Next Pop(RedisReply* reply);

 private:
  std::unique_ptr<redisReader, void (*)(redisReader*)> reader_;
  size_t pending_bytes_ = 0;  // fed since the last complete reply
};

}  // namespace katsubushi::redis
