#include "net/usable_cpus.h"

#include <sched.h>

#include <charconv>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

namespace katsubushi::net {
namespace {

namespace fs = std::filesystem;

// A CPU bandwidth limit: `quota` microseconds of CPU time per `period`.
struct Bandwidth {
  int64_t quota = 0;
  int64_t period = 0;
  std::string text;  // as the files say it, for the log

  // CPUs, rounded up: 0.5 -> 1, 1.5 -> 2.
  size_t Cpus() const { return static_cast<size_t>((quota + period - 1) / period); }
  bool TighterThan(const Bandwidth& other) const {
    return static_cast<double>(quota) / static_cast<double>(period) <
           static_cast<double>(other.quota) / static_cast<double>(other.period);
  }
};

std::optional<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

std::vector<std::string_view> Split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    const size_t at = s.find(separator);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

bool ListHas(std::string_view list, std::string_view item) {
  for (std::string_view part : Split(list, ',')) {
    if (part == item) return true;
  }
  return false;
}

// v2: "max 100000" (no limit) or "<quota> <period>".
std::optional<Bandwidth> ReadCpuMax(const fs::path& dir) {
  const std::optional<std::string> text = ReadFile(dir / "cpu.max");
  if (!text) return std::nullopt;
  const std::string_view line = Trim(*text);
  const std::vector<std::string_view> fields = Split(line, ' ');
  if (fields.size() != 2) return std::nullopt;
  const std::optional<int64_t> quota = ParseInt(fields[0]);
  const std::optional<int64_t> period = ParseInt(fields[1]);
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
  return Bandwidth{*quota, *period, "cgroup cpu.max " + std::string(line)};
}

// v1: cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us.
std::optional<Bandwidth> ReadCfs(const fs::path& dir) {
  const std::optional<std::string> quota_text = ReadFile(dir / "cpu.cfs_quota_us");
  const std::optional<std::string> period_text = ReadFile(dir / "cpu.cfs_period_us");
  if (!quota_text || !period_text) return std::nullopt;
  const std::optional<int64_t> quota = ParseInt(Trim(*quota_text));
  const std::optional<int64_t> period = ParseInt(Trim(*period_text));
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
  return Bandwidth{*quota, *period,
                   "cgroup cpu.cfs_quota_us " + std::to_string(*quota) + " cpu.cfs_period_us " +
                       std::to_string(*period)};
}

// One cgroup hierarchy that can hold a CPU limit: where the process is in it
// and where it is mounted.
struct Hierarchy {
  bool v2 = false;
  std::string path;        // from /proc/self/cgroup
  std::string mount_root;  // the hierarchy's directory mounted at mount_point
  std::string mount_point;
  bool mounted = false;
};

// The tightest limit from the process's cgroup up to the mount point.
std::optional<Bandwidth> TightestLimit(const fs::path& root, const Hierarchy& h) {
  std::string_view relative = h.path;
  // A mount of part of the hierarchy (a container that sees the host's
  // paths) holds the process's cgroup under the part's own name; when the
  // path is not below it, the mount point is the process's own cgroup.
  if (h.mount_root != "/") {
    relative = relative.starts_with(h.mount_root) ? relative.substr(h.mount_root.size()) : "";
  }
  const fs::path top = root / fs::path(h.mount_point).relative_path();
  fs::path rel = fs::path(relative).relative_path().lexically_normal();
  if (rel.string().starts_with("..")) rel.clear();  // never above the mount
  std::optional<Bandwidth> tightest;
  for (;;) {
    const std::optional<Bandwidth> limit = h.v2 ? ReadCpuMax(top / rel) : ReadCfs(top / rel);
    if (limit && (!tightest || limit->TighterThan(*tightest))) tightest = limit;
    if (rel.empty()) break;
    rel = rel.has_filename() ? rel.parent_path() : rel.parent_path().parent_path();
  }
  return tightest;
}

// The hierarchies of /proc/self/cgroup that may limit CPU: v2's unified one
// ("0::/path") and v1's with the cpu controller ("4:cpu,cpuacct:/path"),
// with their mounts from /proc/self/mountinfo.
std::vector<Hierarchy> CpuHierarchies(const fs::path& root) {
  std::vector<Hierarchy> found;
  const std::optional<std::string> cgroup = ReadFile(root / "proc/self/cgroup");
  if (!cgroup) return found;
  for (std::string_view line : Split(*cgroup, '\n')) {
    const size_t first = line.find(':');
    const size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    Hierarchy h;
    h.path = std::string(line.substr(second + 1));
    if (id == "0" && controllers.empty()) {
      h.v2 = true;
    } else if (!ListHas(controllers, "cpu")) {
      continue;
    }
    found.push_back(std::move(h));
  }
  // mountinfo: "36 35 0:30 <root> <mount point> <options> [optional...] - <fstype> <source> <super options>"
  const std::optional<std::string> mountinfo = ReadFile(root / "proc/self/mountinfo");
  if (!mountinfo) return found;
  for (std::string_view line : Split(*mountinfo, '\n')) {
    const std::vector<std::string_view> fields = Split(line, ' ');
    size_t dash = 0;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (dash < 5 || dash + 3 >= fields.size()) continue;
    const std::string_view fstype = fields[dash + 1];
    const std::string_view super_options = fields[dash + 3];
    for (Hierarchy& h : found) {
      if (h.mounted) continue;
      if (h.v2 ? fstype != "cgroup2" : fstype != "cgroup" || !ListHas(super_options, "cpu")) continue;
      h.mount_root = std::string(fields[3]);
      h.mount_point = std::string(fields[4]);
      h.mounted = true;
    }
  }
  return found;
}

std::string Plural(size_t n, std::string_view what) {
  return std::to_string(n) + " " + std::string(what) + (n == 1 ? "" : "s");
}

}  // namespace

CpuBudget UsableCpusUnder(const fs::path& root, size_t affinity_cpus) {
  std::optional<Bandwidth> tightest;
  for (const Hierarchy& h : CpuHierarchies(root)) {
    if (!h.mounted) continue;
    const std::optional<Bandwidth> limit = TightestLimit(root, h);
    if (limit && (!tightest || limit->TighterThan(*tightest))) tightest = limit;
  }
  if (tightest && (affinity_cpus == 0 || tightest->Cpus() <= affinity_cpus)) {
    return {std::max<size_t>(1, tightest->Cpus()), tightest->text};
  }
  if (affinity_cpus > 0) return {affinity_cpus, "affinity mask of " + Plural(affinity_cpus, "CPU")};
  return {1, "no affinity mask or cgroup limit could be read"};
}

CpuBudget UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  size_t affinity = 0;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    affinity = static_cast<size_t>(CPU_COUNT(&set));
  } else {
    affinity = std::thread::hardware_concurrency();  // more CPUs than cpu_set_t holds
  }
  return UsableCpusUnder("/", affinity);
}

CpuBudget IoThreads(int requested) {
  if (requested > 0) return {static_cast<size_t>(requested), "-threads=" + std::to_string(requested)};
  return UsableCpus();
}

}  // namespace katsubushi::net
