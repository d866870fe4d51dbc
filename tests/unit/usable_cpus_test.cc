// The default thread count's rule over fake cgroup trees in a temp dir: the
// files as the kernel shows them on the host, in a container with its own
// cgroup namespace (v2) and in one that sees the host's paths (v1).
#include "net/usable_cpus.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace katsubushi::net {
namespace {

namespace fs = std::filesystem;

constexpr char kV2Mount[] = "30 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

class UsableCpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("usable_cpus_test." + std::to_string(::getpid()) + "." +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& path, const std::string& text) {
    const fs::path file = root_ / path;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  // A v2 container with its own cgroup namespace: it is at the root.
  void NamespacedV2(const std::string& cpu_max) {
    Write("proc/self/cgroup", "0::/\n");
    Write("proc/self/mountinfo", kV2Mount);
    Write("sys/fs/cgroup/cpu.max", cpu_max);
  }

  // cgroup v1's CPU bandwidth files in `dir`, the period 100 ms.
  void Cfs(const std::string& dir, const std::string& quota) {
    Write(dir + "/cpu.cfs_quota_us", quota + "\n");
    Write(dir + "/cpu.cfs_period_us", "100000\n");
  }

  fs::path root_;
};

TEST_F(UsableCpusTest, V2CpuMaxIsRoundedUp) {
  NamespacedV2("150000 100000\n");
  const CpuBudget b = UsableCpusUnder(root_, 4);
  EXPECT_EQ(b.cpus, 2u);
  EXPECT_EQ(b.source, "cgroup cpu.max 150000 100000");
}

TEST_F(UsableCpusTest, HalfACpuIsOneThread) {
  NamespacedV2("50000 100000\n");
  EXPECT_EQ(UsableCpusUnder(root_, 64).cpus, 1u);
}

TEST_F(UsableCpusTest, V2WithoutALimitFollowsTheAffinityMask) {
  Write("proc/self/cgroup", "0::/app.slice/kb.service\n");
  Write("proc/self/mountinfo", kV2Mount);
  Write("sys/fs/cgroup/app.slice/kb.service/cpu.max", "max 100000\n");
  const CpuBudget b = UsableCpusUnder(root_, 4);
  EXPECT_EQ(b.cpus, 4u);
  EXPECT_EQ(b.source, "affinity mask of 4 CPUs");
}

TEST_F(UsableCpusTest, AnAncestorsTighterLimitWins) {
  Write("proc/self/cgroup", "0::/a/b\n");
  Write("proc/self/mountinfo", kV2Mount);
  Write("sys/fs/cgroup/a/cpu.max", "100000 100000\n");
  Write("sys/fs/cgroup/a/b/cpu.max", "300000 100000\n");
  const CpuBudget b = UsableCpusUnder(root_, 8);
  EXPECT_EQ(b.cpus, 1u);
  EXPECT_EQ(b.source, "cgroup cpu.max 100000 100000");
}

TEST_F(UsableCpusTest, AnAffinityMaskSmallerThanTheLimitWins) {
  NamespacedV2("300000 100000\n");
  const CpuBudget b = UsableCpusUnder(root_, 1);
  EXPECT_EQ(b.cpus, 1u);
  EXPECT_EQ(b.source, "affinity mask of 1 CPU");
}

// podman on a cgroup v1 host without a cgroup namespace: /proc/self/cgroup
// names the host's path, and the mount shows that directory at the mount point.
TEST_F(UsableCpusTest, V1ContainerSeeingHostPaths) {
  Write("proc/self/cgroup",
        "5:memory:/machine.slice/libpod-1.scope\n"
        "4:cpu,cpuacct:/machine.slice/libpod-1.scope\n"
        "0::/machine.slice/libpod-1.scope\n");
  Write("proc/self/mountinfo",
        "600 599 0:31 /machine.slice/libpod-1.scope /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n"
        "601 599 0:32 /machine.slice/libpod-1.scope /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n");
  Cfs("sys/fs/cgroup/cpu,cpuacct", "50000");
  const CpuBudget b = UsableCpusUnder(root_, 2);
  EXPECT_EQ(b.cpus, 1u);
  EXPECT_EQ(b.source, "cgroup cpu.cfs_quota_us 50000 cpu.cfs_period_us 100000");
}

TEST_F(UsableCpusTest, V1UnlimitedQuotaAndHybridV2WithoutCpuController) {
  Write("proc/self/cgroup", "1:cpu:/\n0::/\n");
  Write("proc/self/mountinfo",
        "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  Cfs("sys/fs/cgroup/cpu", "-1");
  Write("sys/fs/cgroup/unified/cgroup.controllers", "");
  const CpuBudget b = UsableCpusUnder(root_, 2);
  EXPECT_EQ(b.cpus, 2u);
  EXPECT_EQ(b.source, "affinity mask of 2 CPUs");
}

TEST_F(UsableCpusTest, V1LimitInANestedCgroup) {
  Write("proc/self/cgroup", "3:cpuacct,cpu:/ecs/task/container\n");
  Write("proc/self/mountinfo", "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu\n");
  Cfs("sys/fs/cgroup/cpu,cpuacct/ecs/task/container", "25000");
  Cfs("sys/fs/cgroup/cpu,cpuacct/ecs/task", "400000");
  EXPECT_EQ(UsableCpusUnder(root_, 64).cpus, 1u);
}

TEST_F(UsableCpusTest, MalformedFilesAreNoLimit) {
  NamespacedV2("lots 100000\n");
  EXPECT_EQ(UsableCpusUnder(root_, 3).cpus, 3u);
  Write("sys/fs/cgroup/cpu.max", "0 100000\n");
  EXPECT_EQ(UsableCpusUnder(root_, 3).cpus, 3u);
}

TEST_F(UsableCpusTest, NothingReadableIsTheAffinityMaskOrOne) {
  EXPECT_EQ(UsableCpusUnder(root_, 3).cpus, 3u);
  const CpuBudget none = UsableCpusUnder(root_, 0);
  EXPECT_EQ(none.cpus, 1u);
  EXPECT_FALSE(none.source.empty());
}

TEST(IoThreadsTest, AnExplicitCountWins) {
  const CpuBudget b = IoThreads(5);
  EXPECT_EQ(b.cpus, 5u);
  EXPECT_EQ(b.source, "-threads=5");
}

TEST(IoThreadsTest, TheLiveReaderGivesAtLeastOneAndNoMoreThanTheHostHas) {
  const CpuBudget b = IoThreads(0);
  EXPECT_GE(b.cpus, 1u);
  EXPECT_LE(b.cpus, std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_FALSE(b.source.empty());
}

}  // namespace
}  // namespace katsubushi::net
