// The detail behind kb_last_error(), one per thread, shared by the C ABI's
// translation units (the generator's and the client's).
#pragma once

#include <string>

namespace katsubushi::c_abi {
extern thread_local std::string t_last_error;
}  // namespace katsubushi::c_abi
