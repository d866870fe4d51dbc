// How many CPUs this process may use, the default number of io threads of
// every front (-threads=0), so that a sidecar given a fraction of a large
// host runs a handful of threads, not one per host CPU: as Go's GOMAXPROCS
// (1.25) and the JVM, the CPUs of the affinity mask (taskset, a cpuset)
// bounded by the cgroup's CPU bandwidth limit (v2 `cpu.max`, v1
// `cpu.cfs_quota_us` / `cpu.cfs_period_us`, the smallest along the path from
// the process's cgroup up to the hierarchy's root), rounded up, at least 1.
// A limit of 0.5 CPU gives 1 thread, 1.5 gives 2.
//
// The cgroup files are found as the kernel describes them: the process's
// path in each hierarchy from /proc/self/cgroup, each hierarchy's mount point
// (and the part of it mounted there) from /proc/self/mountinfo, so the same
// rule holds on the host, in a container with its own cgroup namespace and in
// one that sees the host's paths.
//
// Thread safety: free functions; they read files and return values.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace katsubushi::net {

struct CpuBudget {
  size_t cpus = 1;     // >= 1
  std::string source;  // what set it, for the start-up log: "cgroup cpu.max 150000 100000"
};

// The rule, over a file system rooted at `root` ("/" in production; a fake
// tree in tests): reads root/proc/self/cgroup, root/proc/self/mountinfo and
// the cgroup files they lead to. `affinity_cpus` is the size of the affinity
// mask (0: unknown, then only the cgroup limit bounds the count, and without
// one the count is 1).
CpuBudget UsableCpusUnder(const std::filesystem::path& root, size_t affinity_cpus);

// The live reader: sched_getaffinity(2) and the files under "/".
CpuBudget UsableCpus();

// The io threads of each front: `requested` when it is > 0 (-threads=N wins
// over every limit), else UsableCpus().
CpuBudget IoThreads(int requested);

}  // namespace katsubushi::net
