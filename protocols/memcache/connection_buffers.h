// The memory a memcached connection holds between requests: its unconsumed
// input, and the buffer replies are built in. Both grow for a large request or
// a burst and shrink back once it is over (limits in session.h), so what an
// idle connection costs does not depend on what it once sent.
//
// Thread safety: none; an InputBuffer belongs to one connection, used from the
// thread that runs it. Header-only: these run on every read.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "memcache/session.h"

namespace katsubushi::memcache {

// Bytes read from the socket and not yet consumed by the Session: the socket
// loop reads into ReadRoom(), Commit()s what arrived, passes pending() to
// Session::Process and Consume()s what it took.
class InputBuffer {
 public:
  InputBuffer() : bytes_(kInitialInputBytes) {}

  // Where the next read may write, at least kMinReadRoom bytes: a partial
  // request (or a burst) that fills the buffer doubles it, up to
  // kMaxInputBytes, which always leaves room (see session.h).
  std::span<char> ReadRoom() {
    if (bytes_.size() - used_ < kMinReadRoom) {
      // Exactly this size (vector::resize may round up to twice the old one)
      // and only the pending bytes copied.
      std::vector<char> grown(std::min(kMaxInputBytes, std::max(bytes_.size() * 2, used_ + kMinReadRoom)));
      std::memcpy(grown.data(), bytes_.data(), used_);
      bytes_.swap(grown);
    }
    return {bytes_.data() + used_, bytes_.size() - used_};
  }
  void Commit(size_t n) { used_ += n; }

  std::string_view pending() const { return {bytes_.data(), used_}; }

  // Drops the first `n` pending bytes (what the session consumed). A buffer
  // grown past kRetainedBufferBytes is replaced by a fresh initial-size one
  // as soon as what is left (a partial request) fits in it.
  void Consume(size_t n) {
    if (n == 0) return;
    used_ -= n;
    if (bytes_.size() > kRetainedBufferBytes && used_ + kMinReadRoom <= kInitialInputBytes) {
      std::vector<char> fresh(kInitialInputBytes);
      std::memcpy(fresh.data(), bytes_.data() + n, used_);
      bytes_.swap(fresh);
      return;
    }
    std::memmove(bytes_.data(), bytes_.data() + n, used_);
  }

  size_t capacity() const { return bytes_.capacity(); }

 private:
  std::vector<char> bytes_;  // [0, used_) is pending
  size_t used_ = 0;
};

// Empties the buffer a batch of replies is built in before the next batch,
// releasing it if a large batch grew it past kRetainedBufferBytes.
inline void ResetOutput(std::string* out) {
  if (out->capacity() > kRetainedBufferBytes) {
    std::string().swap(*out);
  } else {
    out->clear();
  }
}

}  // namespace katsubushi::memcache
