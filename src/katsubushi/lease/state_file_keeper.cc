#include "katsubushi/lease/state_file_keeper.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace katsubushi::lease {
namespace {

constexpr std::string_view kMagic = "katsubushi-state 1 ";
constexpr Status kBadStateFile{StatusCode::kInvalidArgument,
                               "state file is not \"katsubushi-state 1 <worker id> <unix ms>\""};

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Writes `content` to `path` so that a crash leaves the old or the new file
// whole: a temporary file, fsync, rename over, fsync the directory.
bool WriteAtomically(const std::string& path, const std::string& content, std::string* error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = Errno("open " + tmp);
    return false;
  }
  const bool written = ::write(fd, content.data(), content.size()) ==
                           static_cast<ssize_t>(content.size()) &&
                       ::fsync(fd) == 0;
  if (!written) *error = Errno("write " + tmp);
  ::close(fd);
  if (!written) return false;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = Errno("rename " + tmp);
    return false;
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

}  // namespace

std::string FormatStateFile(uint32_t worker_id, int64_t unix_millis) {
  return std::string(kMagic) + std::to_string(worker_id) + " " + std::to_string(unix_millis) + "\n";
}

Result<int64_t> ParseStateFile(std::string_view content) {
  if (!content.starts_with(kMagic)) return kBadStateFile;
  content.remove_prefix(kMagic.size());
  uint32_t worker = 0;
  auto [wend, wec] = std::from_chars(content.data(), content.data() + content.size(), worker);
  if (wec != std::errc() || wend == content.data() + content.size() || *wend != ' ') {
    return kBadStateFile;
  }
  content.remove_prefix(static_cast<size_t>(wend - content.data()) + 1);
  int64_t millis = 0;
  auto [mend, mec] = std::from_chars(content.data(), content.data() + content.size(), millis);
  if (mec != std::errc() || millis < 0) return kBadStateFile;
  std::string_view rest(mend, static_cast<size_t>(content.data() + content.size() - mend));
  if (rest != "\n" && !rest.empty()) return kBadStateFile;
  return millis;
}

StateFileKeeper::StateFileKeeper(GeneratorCore& generator, Clock& clock, StateFileOptions options)
    : generator_(generator), clock_(clock), options_(std::move(options)) {}

StateFileKeeper::~StateFileKeeper() { Stop(); }

void StateFileKeeper::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

bool StateFileKeeper::Write(int64_t unix_millis, std::string* error) {
  return WriteAtomically(options_.path, FormatStateFile(options_.worker_id, unix_millis), error);
}

bool StateFileKeeper::Start(std::string* error, std::stop_token stop) {
  std::ifstream in(options_.path);
  if (in) {
    std::stringstream buffer;
    buffer << in.rdbuf();
    Result<int64_t> watermark = ParseStateFile(buffer.str());
    if (!watermark.ok()) {
      *error = options_.path + ": " + std::string(watermark.status().message());
      return false;
    }
    Log(LogLevel::kInfo, "state file " + options_.path + ": previous IDs end before " +
                             std::to_string(*watermark) + " ms; waiting for the clock to pass it");
    // AdvancePast raises the floor at once and then waits; in slices, so
    // that a stop is seen within one.
    const auto give_up = std::chrono::steady_clock::now() + options_.max_wait;
    bool passed = false;
    while (!stop.stop_requested()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      passed = generator_.AdvancePast(
                   *watermark, std::clamp(left, std::chrono::milliseconds(0),
                                          StateFileOptions::kStopCheckInterval))
                   .ok();
      if (passed || left <= StateFileOptions::kStopCheckInterval) break;
    }
    if (stop.stop_requested()) {
      *error = "stopped while waiting for the clock to pass the state file's watermark";
      return false;
    }
    if (!passed) {
      Log(LogLevel::kWarning, "the clock is still behind the state file's watermark; IDs are "
                              "refused until it passes");
    }
  } else if (errno != ENOENT) {
    *error = Errno("open " + options_.path);
    return false;
  }
  const int64_t now = clock_.NowUnixMicros();
  const int64_t until = now + std::chrono::microseconds(StateFileOptions::kHorizon).count();
  if (!Write(LastMillisBefore(until), error)) return false;
  if (Status s = generator_.Resume(options_.worker_id, until); !s.ok()) {
    *error = std::string(s.message());
    return false;
  }
  thread_ = std::thread([this] { Run(); });
  return true;
}

void StateFileKeeper::Run() {
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, StateFileOptions::kInterval, [this] { return stopping_; })) {
    const int64_t until =
        clock_.NowUnixMicros() + std::chrono::microseconds(StateFileOptions::kHorizon).count();
    std::string error;
    if (Write(LastMillisBefore(until), &error)) {
      generator_.ExtendLease(until);
      if (write_failing_) Log(LogLevel::kInfo, "state file writable again; issuing IDs");
      write_failing_ = false;
    } else if (!write_failing_) {
      write_failing_ = true;
      Log(LogLevel::kError, "cannot update the state file; IDs stop when the last promise runs out: " +
                                error);
    }
  }
}

void StateFileKeeper::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (!thread_.joinable()) return;
  thread_.join();
  generator_.Suspend();
  // The exact watermark, so that a clean restart does not wait out the
  // promise. Nothing was issued after it: the generator is suspended.
  std::string error;
  const int64_t last = generator_.last_issued_unix_millis();
  if (last > 0 && !Write(last, &error)) {
    Log(LogLevel::kWarning, "cannot record the last issued time in the state file: " + error);
  }
}

}  // namespace katsubushi::lease
