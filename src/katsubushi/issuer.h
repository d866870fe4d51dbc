// Issuer: the one way a front issues IDs. It asks the generator and counts the
// request in Stats under the front's label (cmd_get, then get_hits or
// get_misses by reason), so no front can issue without counting or count
// differently from the others.
//
// A value type over two references, cheap to make per request or to keep in
// a session. Thread safety: that of GeneratorCore and Stats (any thread).
#pragma once

#include <cstdint>
#include <span>

#include "katsubushi/generator_core.h"
#include "katsubushi/stats.h"
#include "katsubushi/status.h"

namespace katsubushi {

class Issuer {
 public:
  Issuer(GeneratorCore& generator, Stats& stats, FrontLabel front)
      : generator_(generator), stats_(stats), front_(front) {}

  Result<uint64_t> Next() {
    stats_.CountGet(front_);
    Result<uint64_t> id = generator_.Next();
    if (id.ok()) {
      stats_.CountIssued(front_, 1);
    } else {
      stats_.CountFailed(front_, id.status());
    }
    return id;
  }

  // out.size() IDs in one reservation (GeneratorCore::NextN).
  Status NextN(std::span<uint64_t> out) {
    stats_.CountGet(front_);
    const Status s = generator_.NextN(out);
    if (s.ok()) {
      stats_.CountIssued(front_, out.size());
    } else {
      stats_.CountFailed(front_, s, out.size());
    }
    return s;
  }

  // A request for IDs refused before any was asked for (a malformed get, too
  // many keys): go-katsubushi counts it in cmd_get all the same.
  void CountRefused() { stats_.CountGet(front_); }

 private:
  GeneratorCore& generator_;
  Stats& stats_;
  const FrontLabel front_;
};

}  // namespace katsubushi
