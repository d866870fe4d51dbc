// How the lease code reports what it does, without tying the library to a
// logging framework: the server passes a function that writes to spdlog; an
// embedding program passes its own, or none.
#pragma once

#include <functional>
#include <string_view>

namespace katsubushi::lease {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
using LogFunction = std::function<void(LogLevel, std::string_view message)>;

}  // namespace katsubushi::lease
