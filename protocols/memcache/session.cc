#include "memcache/session.h"

#include "memcache/binary_session.h"
#include "memcache/text_session.h"

namespace katsubushi::memcache {

std::unique_ptr<Session> NewSession(uint8_t first_byte, const ServiceContext& context) {
  if (first_byte == kBinaryRequestMagic) return std::make_unique<BinarySession>(context);
  return std::make_unique<TextSession>(context);
}

}  // namespace katsubushi::memcache
