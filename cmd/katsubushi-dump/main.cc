// katsubushi-dump: decodes IDs into their time, worker id and sequence.
//
//   katsubushi-dump [-js-safe] <id>...
//
// Prints one JSON object per ID, in go-katsubushi's shape:
//   {"time":"2017-02-22T09:16:26.123Z","worker_id":1,"sequence":0}
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "katsubushi/id_layout.h"
#include "katsubushi/time_format.h"

namespace {

bool ParseId(std::string_view text, uint64_t* id) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *id, 10);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

int main(int argc, char** argv) {
  katsubushi::IdLayout layout = katsubushi::IdLayout::Default();
  std::vector<std::string_view> ids;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-js-safe" || arg == "--js-safe" || arg == "-js-safe=true" ||
        arg == "--js-safe=true") {
      layout = katsubushi::IdLayout::JsSafe();
    } else if (arg == "-h" || arg == "-help" || arg == "--help") {
      std::fprintf(stdout, "usage: katsubushi-dump [-js-safe] <id>...\n");
      return 0;
    } else {
      ids.push_back(arg);
    }
  }
  if (ids.empty()) {
    std::fprintf(stderr, "no id\nusage: katsubushi-dump [-js-safe] <id>...\n");
    return 1;
  }
  for (std::string_view text : ids) {
    uint64_t id = 0;
    if (!ParseId(text, &id)) {
      std::fprintf(stderr, "katsubushi-dump: invalid id \"%.*s\": want a decimal unsigned 64-bit integer\n",
                   static_cast<int>(text.size()), text.data());
      return 1;
    }
    if (id > layout.max_id()) {
      std::fprintf(stderr, "katsubushi-dump: id %llu is larger than the layout's largest id %llu\n",
                   static_cast<unsigned long long>(id),
                   static_cast<unsigned long long>(layout.max_id()));
      return 1;
    }
    const katsubushi::IdParts parts = layout.Decode(id);
    std::printf("{\"time\":\"%s\",\"worker_id\":%u,\"sequence\":%u}\n",
                katsubushi::FormatRfc3339Millis(parts.unix_millis).c_str(), parts.worker_id, parts.sequence);
  }
  return 0;
}
