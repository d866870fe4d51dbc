// Linked as the server is (KATSUBUSHI_STATIC_RUNTIME): throws through several
// frames and catches, and reads std::random_device, so the glibc_compat
// definitions the static C++ runtime binds to (_dl_find_object for the
// unwinder, arc4random for random_device) are exercised in a real process.
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>

namespace {

[[gnu::noinline]] int Throw(int depth) {
  if (depth == 0) throw std::runtime_error("unwound");
  return Throw(depth - 1) + 1;
}

}  // namespace

int main() {
  std::string caught;
  try {
    Throw(8);
  } catch (const std::runtime_error& e) {
    caught = e.what();
  }
  std::random_device device;  // "default": arc4random in GCC 12's libstdc++
  unsigned distinct = 0;
  const unsigned first = device();
  for (int i = 0; i < 8; ++i) distinct += device() != first ? 1 : 0;
  std::printf("caught=%s random_varies=%d\n", caught.c_str(), distinct > 0 ? 1 : 0);
  return caught == "unwound" && distinct > 0 ? 0 : 1;
}
