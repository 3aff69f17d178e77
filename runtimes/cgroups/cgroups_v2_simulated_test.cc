// The cgroup v2 backend against a SIMULATED cgroup2 tree: a temp dir holding the interface files
// the kernel would make. What is real here is what the backend writes and reads (file names and
// values); what is simulated is the kernel (no limit is enforced, nothing is killed). This host
// has no usable v2 controllers, so the v1 test is the one that exercises a kernel.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtimes/cgroups/cgroups.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void Put(const std::string& path, const std::string& content) { std::ofstream(path) << content; }

class CgroupV2SimulatedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
            "/cg2-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
    Put(root_ + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    Put(root_ + "/cgroup.subtree_control", "");
    Put(root_ + "/cgroup.procs", "1\n");
  }
  // What the kernel makes on mkdir of a group: its interface files.
  void SimulateGroup(const std::string& rel, bool with_kill = true) {
    std::string d = root_ + "/" + rel;
    fs::create_directories(d);
    for (const char* f : {"cgroup.subtree_control", "cgroup.procs", "cgroup.freeze", "memory.max",
                          "memory.swap.max", "cpu.max", "pids.max"}) {
      Put(d + "/" + f, "");
    }
    if (with_kill) Put(d + "/cgroup.kill", "");
    Put(d + "/memory.current", "1048576\n");
    Put(d + "/memory.peak", "2097152\n");
    Put(d + "/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
    Put(d + "/pids.current", "3\n");
    Put(d + "/pids.events", "max 7\n");
    Put(d + "/memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n");
  }
  std::string root_;
};

TEST_F(CgroupV2SimulatedTest, CreateEnablesControllersDownTheTreeAndWritesEachLimit) {
  SimulateGroup("mentat");
  SimulateGroup("mentat/web-1");
  auto host = CgroupHost::V2(root_);
  EXPECT_EQ(host->Version(), "v2");
  auto g =
      host->Create("mentat/web-1", {.memory_bytes = 64 << 20, .cpu_percent = 150, .pids_max = 50});
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(Slurp(root_ + "/cgroup.subtree_control"), "+cpu +memory +pids");
  EXPECT_EQ(Slurp(root_ + "/mentat/cgroup.subtree_control"), "+cpu +memory +pids");
  EXPECT_EQ(Slurp(root_ + "/mentat/web-1/cgroup.subtree_control"), "")
      << "the leaf delegates nothing";
  EXPECT_EQ(Slurp(root_ + "/mentat/web-1/memory.max"), "67108864");
  EXPECT_EQ(Slurp(root_ + "/mentat/web-1/memory.swap.max"), "0") << "no swap on top of the limit";
  EXPECT_EQ(Slurp(root_ + "/mentat/web-1/cpu.max"), "150000 100000") << "1.5 cores";
  EXPECT_EQ(Slurp(root_ + "/mentat/web-1/pids.max"), "50");
  EXPECT_EQ((*g)->path(), "mentat/web-1");
}

TEST_F(CgroupV2SimulatedTest, StatsOomKillsAndKillAllReadAndWriteTheV2Files) {
  SimulateGroup("mentat");
  SimulateGroup("mentat/web-1");
  auto g = CgroupHost::V2(root_)->Open("mentat/web-1");
  ASSERT_TRUE(g) << g.error().message();
  auto stats = (*g)->Stats();
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_EQ(stats->memory_bytes, 1048576u);
  EXPECT_EQ(stats->memory_peak_bytes, 2097152u);
  EXPECT_EQ(stats->cpu_usage_ns, 1500000u);
  EXPECT_EQ(stats->pids, 3u);
  EXPECT_EQ(stats->pids_limit_hits, 7u) << "pids.events max";
  EXPECT_EQ(*(*g)->OomKills(), 2u) << "memory.events oom_kill, not oom";
  ASSERT_TRUE((*g)->KillAll());  // the simulated cgroup.procs is empty: done at once
  EXPECT_EQ(Slurp(root_ + "/mentat/web-1/cgroup.kill"), "1");
  ASSERT_TRUE((*g)->AddProcess(4242));
  EXPECT_EQ(Slurp(root_ + "/mentat/web-1/cgroup.procs"), "4242");
}

TEST_F(CgroupV2SimulatedTest, WithoutCgroupKillItFreezesThenThaws) {
  SimulateGroup("mentat");
  SimulateGroup("mentat/old-kernel", /*with_kill=*/false);
  auto g = CgroupHost::V2(root_)->Open("mentat/old-kernel");
  ASSERT_TRUE(g);
  ASSERT_TRUE((*g)->KillAll());
  EXPECT_EQ(Slurp(root_ + "/mentat/old-kernel/cgroup.freeze"), "0") << "left thawed";
  EXPECT_FALSE(fs::exists(root_ + "/mentat/old-kernel/cgroup.kill"));
}

TEST_F(CgroupV2SimulatedTest, AMissingControllerIsNamedAndOnlyFailsTheLimitsThatNeedIt) {
  Put(root_ + "/cgroup.controllers", "cpu pids\n");
  SimulateGroup("mentat");
  SimulateGroup("mentat/t");
  auto host = CgroupHost::V2(root_);
  auto st = host->Usable(CgroupController::kMemory);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("memory controller is not available"), std::string::npos)
      << st.error().message();
  EXPECT_TRUE(host->Usable(CgroupController::kCpu));
  auto g = host->Create("mentat/t", {.memory_bytes = 1 << 20});
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code(), Code::kFailedPrecondition);
  auto ok = host->Create("mentat/t", {.cpu_percent = 50});
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(Slurp(root_ + "/cgroup.subtree_control"), "+cpu +pids");
  EXPECT_EQ(host->Describe()["controllers"]["cpu"], "ok");
}

TEST_F(CgroupV2SimulatedTest, AnUnwritableRootIsReportedNotCrashedOn) {
  auto host = CgroupHost::V2(root_ + "/does-not-exist");
  auto st = host->UsableForTracking();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("does not exist"), std::string::npos);
  auto g = host->Create("mentat/x", {});
  EXPECT_FALSE(g);
  auto missing = CgroupHost::V2(root_)->Open("mentat/nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace mentat
