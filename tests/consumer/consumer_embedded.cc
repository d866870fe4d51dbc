// Uses the installed Generator with a static worker id.
#include <katsubushi/embedded/generator.h>

#include <cstdio>

int main() {
  katsubushi::GeneratorConfig config;
  config.worker_id = 7;
  auto opened = katsubushi::Generator::Open(config);
  if (!opened.ok()) return 1;
  auto& generator = *opened.value();
  uint64_t ids[100];
  if (!generator.NextN(ids).ok()) return 2;
  if (generator.Decode(ids[99]).worker_id != 7) return 3;
  katsubushi::GeneratorConfig both = config;
  both.redis_url = "redis://localhost";
  if (katsubushi::Generator::Open(both).ok()) return 4;  // one source only
  std::printf("embedded ok %llu\n", static_cast<unsigned long long>(ids[99]));
  return 0;
}
