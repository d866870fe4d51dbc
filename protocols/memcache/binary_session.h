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
// length over MaxBodyLength(opcode) is refused as soon as the header arrives
// and the connection closed (Go allocates whatever the header claims, up to
// 4 GiB).
#pragma once

#include "memcache/binary_header.h"
#include "memcache/session.h"

namespace katsubushi::memcache {

// The largest body a request with this opcode may announce: a get's key
// (kMaxBinaryGetBody), else kMaxBinaryBody.
size_t MaxBodyLength(uint8_t opcode);

class BinarySession final : public Session {
 public:
  explicit BinarySession(const ServiceContext& context) : context_(context) {}
  ProcessResult Process(std::string_view input, std::string* out) override;
  size_t retained_bytes() const override { return 0; }  // replies go straight to `out`

 private:
  // Returns false when the connection must close after the replies.
  bool Handle(const RequestHeader& header, std::string_view key, std::string* out);
  void HandleGet(const RequestHeader& header, std::string_view key, std::string* out);
  void HandleStat(const RequestHeader& header, std::string_view key, std::string* out);

  const ServiceContext& context_;
};

}  // namespace katsubushi::memcache
