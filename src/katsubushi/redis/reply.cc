#include "katsubushi/redis/reply.h"

#include <hiredis/hiredis.h>

namespace katsubushi::redis {
namespace {

RedisReply Convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::kString; break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::kStatus; break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::kError; break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::kInteger; break;
    case REDIS_REPLY_ARRAY: out.type = RedisReply::Type::kArray; break;
    default: out.type = RedisReply::Type::kNil; break;
  }
  if (r.str != nullptr) out.str.assign(r.str, r.len);
  out.integer = r.integer;
  out.elements.reserve(r.elements);
  for (size_t i = 0; i < r.elements; ++i) out.elements.push_back(Convert(*r.element[i]));
  return out;
}

}  // namespace

void AppendCommand(Args args, std::string* wire) {
  wire->append("*").append(std::to_string(args.size())).append("\r\n");
  for (std::string_view a : args) {
    wire->append("$").append(std::to_string(a.size())).append("\r\n").append(a).append("\r\n");
  }
}

ReplyReader::ReplyReader() : reader_(redisReaderCreate(), redisReaderFree) {}

ReplyReader::~ReplyReader() = default;

bool ReplyReader::Feed(const char* data, size_t size) {
  pending_bytes_ += size;
  if (pending_bytes_ > kMaxReplyBytes) return false;
  return redisReaderFeed(reader_.get(), data, size) == REDIS_OK;
}

ReplyReader::Next ReplyReader::Pop(RedisReply* reply) {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) return Next::kBroken;
  if (raw == nullptr) return Next::kNeedMore;
  *reply = Convert(*static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  pending_bytes_ = 0;
  return Next::kReply;
}

}  // namespace katsubushi::redis
