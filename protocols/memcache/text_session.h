// TextSession: memcached's text protocol as go-katsubushi speaks it (get, gets,
// stats, version, quit), plus the meta commands mg and mn.
//
// Replies (DESIGN.md section 4): `VALUE <key> 0 <len>\r\n<id>\r\n` per key then
// `END\r\n`; `ERROR\r\n` for an empty line, an unknown command or a get with no
// key; `CLIENT_ERROR <reason>\r\n` for input over a limit; `SERVER_ERROR
// <reason>\r\n` when no ID can be issued (go-katsubushi sends ERROR there).
#pragma once

#include <vector>

#include "memcache/session.h"

namespace katsubushi::memcache {

class TextSession final : public Session {
 public:
  explicit TextSession(const ServiceContext& context);
  ProcessResult Process(std::string_view input, std::string* out) override;
  size_t retained_bytes() const override;

 private:
  // Handles one line without its "\n" (a trailing "\r" already removed).
  // Returns false when the connection must close.
  bool HandleLine(std::string_view line, std::string* out);
  void HandleGet(std::string* out);
  void AppendValues(std::string* out) const;
  void HandleMetaGet(std::string* out);
  void HandleStats(std::string* out);
  // Gives back tokens_ and ids_ if a large get grew them past kRetainedScratchBytes.
  void ReleaseLargeScratch();

  const ServiceContext& context_;
  // Inside a line longer than kMaxLineLength: drop bytes up to its newline.
  bool discarding_ = false;
  // Reused across requests so a warm session does not allocate.
  std::vector<std::string_view> tokens_;
  std::vector<uint64_t> ids_;
};

}  // namespace katsubushi::memcache
