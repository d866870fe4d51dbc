// How the C ABI's translation units (the generator's and the client's) report
// errors: a status code returned, its detail kept per thread for
// kb_last_error(), and no exception ever crossing into C.
#pragma once

#include <exception>
#include <string>
#include <string_view>

#include "katsubushi/c/katsubushi.h"

namespace katsubushi::c_abi {

// The detail behind kb_last_error(), one per thread.
extern thread_local std::string t_last_error;

// Records `detail` for kb_last_error() and returns `status`.
inline kb_status Fail(kb_status status, std::string_view detail) {
  t_last_error.assign(detail);
  return status;
}

// Runs `body`, turning any exception into KB_INTERNAL.
template <typename F>
kb_status Guard(F&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    return Fail(KB_INTERNAL, e.what());
  } catch (...) {
    return Fail(KB_INTERNAL, "unknown error");
  }
}

}  // namespace katsubushi::c_abi
