// Uses the installed core: a static worker id, errors as values.
#include <katsubushi/clock.h>
#include <katsubushi/generator_core.h>

#include <cstdio>

int main() {
  katsubushi::GeneratorOptions options;
  options.worker_id = 42;
  auto created = katsubushi::GeneratorCore::Create(katsubushi::SystemClock::Instance(), options);
  if (!created.ok()) return 1;
  auto generator = std::move(created).value();
  uint64_t previous = 0;
  for (int i = 0; i < 10000; ++i) {
    katsubushi::Result<uint64_t> id = generator->Next();
    if (!id.ok() || *id <= previous) return 2;
    previous = *id;
  }
  const katsubushi::IdParts parts = generator->layout().Decode(previous);
  if (parts.worker_id != 42) return 3;
  std::printf("core ok %llu\n", static_cast<unsigned long long>(previous));
  return 0;
}
