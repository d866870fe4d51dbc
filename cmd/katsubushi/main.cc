#include <cstdio>
#include <cstring>

#include "katsubushi/version.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-version") == 0 || std::strcmp(argv[i], "--version") == 0) {
      std::printf("katsubushi version: %s\n", katsubushi::kVersion);
      return 0;
    }
  }
  std::fprintf(stderr, "katsubushi: the server is not built yet\n");
  return 1;
}
