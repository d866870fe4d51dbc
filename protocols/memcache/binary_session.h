// BinarySession: memcached's binary protocol for an ID server.
//
// GET, GETQ, GETK, GETKQ issue an ID (the value is its decimal text, flags 0,
// cas 0); NOOP, QUIT, QUITQ, VERSION and STAT behave as in memcached. Quiet
// gets only suppress misses and we never miss, so they reply too — which is
// what libmemcached's multi-get (GETKQ... NOOP) needs.
//
// Differences from go-katsubushi, all deliberate: an unknown opcode gets
// 0x0081 "Unknown command" with the request's opcode and opaque (Go sends
// 0x0084 with both zero); a generator failure is a binary 0x0086 "temporary
// failure" reply (Go writes text ERROR on the binary connection); a body
// length over kMaxBinaryBody is refused and the connection closed (Go
// allocates whatever the header claims, up to 4 GiB).
#pragma once

#include "memcache/binary_header.h"
#include "memcache/session.h"

namespace katsubushi::memcache {

class BinarySession final : public Session {
 public:
  explicit BinarySession(const ServiceContext& context) : context_(context) {}
  ProcessResult Process(std::string_view input, std::string* out) override;

 private:
  // Returns false when the connection must close after the replies.
  bool Handle(const RequestHeader& header, std::string_view key, std::string* out);
  void HandleGet(const RequestHeader& header, std::string_view key, std::string* out);
  void HandleStat(const RequestHeader& header, std::string_view key, std::string* out);

  const ServiceContext& context_;
};

}  // namespace katsubushi::memcache
