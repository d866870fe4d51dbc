// What a Redis error reply means for the connection it came on. Most errors
// are the command's own (a script error, a wrong password) and the connection
// stays; some say that this node cannot take our writes now, and then the
// connection must go and the next attempt find the primary again — the
// failover case, which keeping the connection would never get out of
// (go-redis's isBadConn/shouldRetry draw the same line).
//
// Pure; thread-safe.
#pragma once

#include <string_view>

namespace katsubushi::redis {

enum class ErrorReplyKind {
  kCommand,           // the command's own error; the connection is fine
  kNotWritable,       // READONLY, LOADING, MASTERDOWN, UNBLOCKED: not (or not yet) a writable primary
  kClusterUnavailable,  // CLUSTERDOWN, TRYAGAIN: the cluster is between states
  kMoved,             // MOVED <slot> <host:port>: the slot lives elsewhere now
  kAsk,               // ASK <slot> <host:port>: this one command goes elsewhere
};

ErrorReplyKind ClassifyErrorReply(std::string_view error);

// True for the kinds after which the connection is dropped.
inline bool DropsConnection(ErrorReplyKind kind) {
  return kind == ErrorReplyKind::kNotWritable || kind == ErrorReplyKind::kClusterUnavailable;
}

}  // namespace katsubushi::redis
