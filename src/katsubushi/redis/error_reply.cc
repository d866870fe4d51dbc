#include "katsubushi/redis/error_reply.h"

#include <array>
#include <utility>

namespace katsubushi::redis {

ErrorReplyKind ClassifyErrorReply(std::string_view error) {
  // The error's first word is its code (Redis's convention since 2.6).
  const std::string_view code = error.substr(0, error.find(' '));
  static constexpr std::array<std::pair<std::string_view, ErrorReplyKind>, 8> kCodes = {{
      {"READONLY", ErrorReplyKind::kNotWritable},
      {"LOADING", ErrorReplyKind::kNotWritable},
      {"MASTERDOWN", ErrorReplyKind::kNotWritable},
      // A WAIT or blocked command cut short because the node became a replica.
      {"UNBLOCKED", ErrorReplyKind::kNotWritable},
      {"CLUSTERDOWN", ErrorReplyKind::kClusterUnavailable},
      {"TRYAGAIN", ErrorReplyKind::kClusterUnavailable},
      {"MOVED", ErrorReplyKind::kMoved},
      {"ASK", ErrorReplyKind::kAsk},
  }};
  for (const auto& [name, kind] : kCodes) {
    if (code == name) return kind;
  }
  return ErrorReplyKind::kCommand;
}

}  // namespace katsubushi::redis
