// RunServer: builds the generator and every enabled front from a validated
// Config, serves until SIGTERM/SIGINT, and returns the process exit code.
#pragma once

#include "katsubushi/config.h"

namespace katsubushi {

int RunServer(const Config& config);

}  // namespace katsubushi
