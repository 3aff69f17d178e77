// The cgroup v1 backend for real, on this host's hybrid hierarchies (needs root): a memory hog
// is OOM-killed and counted, pids.max stops a fork bomb, a 20% quota holds a busy loop, KillAll
// kills a tree whose members left the session, Destroy leaves nothing, Open re-attaches.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "runtimes/cgroups/cgroups.h"
#include "runtimes/process_testing.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = CgroupHost::Probe();
    ASSERT_EQ(host_->Version(), "v1") << "this host is hybrid (ENVIRONMENT.md)";
    for (auto c : {CgroupController::kMemory, CgroupController::kCpu, CgroupController::kPids}) {
      auto st = host_->Usable(c);
      ASSERT_TRUE(st) << "needs root: " << st.error().message();
    }
    path_ = "mentat/test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  void TearDown() override {
    if (group_) {
      group_->KillAll();
      group_->Destroy();
    }
  }

  // Forks a child that joins the group before running `body` (in the child), like a driver's
  // child joins before exec.
  pid_t ForkIntoGroup(const std::function<void()>& body) {
    auto fds = group_->OpenProcsFiles();
    EXPECT_TRUE(fds) << fds.error().message();
    if (!fds) return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
      if (JoinCgroupInChild(*fds) != 0) _exit(100);
      body();
      _exit(0);
    }
    for (int fd : *fds) ::close(fd);
    return pid;
  }

  // A child that waits for a signal, moved into the group from outside (AddProcess).
  pid_t AddPausedMember() {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::pause();
      _exit(0);
    }
    auto st = group_->AddProcess(pid);
    EXPECT_TRUE(st) << st.error().message();
    return st ? pid : -1;
  }

  CgroupHostPtr host_;
  std::string path_;
  CgroupPtr group_;
};

TEST_F(CgroupV1Test, AMemoryHogIsOomKilledAndCounted) {
  auto g = host_->Create(path_, {.memory_bytes = 32 << 20});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  EXPECT_EQ(*group_->OomKills(), 0u);
  pid_t pid = ForkIntoGroup([] {
    // 256 MiB touched page by page: far over the limit, and no swap to hide in.
    const size_t size = 256 << 20;
    // volatile: the compiler may not drop stores to memory nobody reads.
    volatile char* p = static_cast<volatile char*>(::malloc(size));
    for (size_t i = 0; p && i < size; i += 4096) p[i] = 1;
  });
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the hog exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  auto kills = group_->OomKills();
  ASSERT_TRUE(kills) << kills.error().message();
  EXPECT_GE(*kills, 1u);
  auto stats = group_->Stats();
  ASSERT_TRUE(stats);
  EXPECT_LE(stats->memory_peak_bytes, uint64_t{32} << 20);
  EXPECT_GT(stats->memory_peak_bytes, uint64_t{16} << 20) << "the hog got near its limit";
}

TEST_F(CgroupV1Test, PidsMaxStopsAForkBomb) {
  auto g = host_->Create(path_, {.pids_max = 8});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t pid = ForkIntoGroup([&] {
    // Forks until the kernel refuses; reports how many it got and why it stopped.
    int forked = 0, err = 0;
    while (forked < 100) {
      pid_t c = ::fork();
      if (c == 0) {
        ::pause();
        _exit(0);
      }
      if (c < 0) {
        err = errno;
        break;
      }
      ++forked;
    }
    int msg[2] = {forked, err};
    ssize_t w = ::write(report[1], msg, sizeof(msg));
    (void)w;
    ::pause();
  });
  ::close(report[1]);
  int msg[2] = {0, 0};
  ASSERT_EQ(::read(report[0], msg, sizeof(msg)), static_cast<ssize_t>(sizeof(msg)));
  ::close(report[0]);
  EXPECT_EQ(msg[1], EAGAIN) << std::strerror(msg[1]);
  EXPECT_EQ(msg[0], 7) << "8 pids: the bomb itself and 7 children";
  auto stats = group_->Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->pids, 8u);
  EXPECT_EQ(stats->pids_limit_hits, 1u) << "the one fork refused";
  ASSERT_TRUE(group_->KillAll());
  ::waitpid(pid, nullptr, 0);
}

TEST_F(CgroupV1Test, ACpuQuotaOf20PercentHoldsABusyLoop) {
  auto g = host_->Create(path_, {.cpu_percent = 20});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  std::ifstream quota("/sys/fs/cgroup/cpu/" + path_ + "/cpu.cfs_quota_us");
  int64_t q = 0;
  quota >> q;
  EXPECT_EQ(q, 20000);
  pid_t pid = ForkIntoGroup([] {
    volatile uint64_t x = 0;
    while (true) x = x + 1;
  });
  auto before = group_->Stats();
  auto t0 = std::chrono::steady_clock::now();
  // A measurement over a window, not a wait for state: the loop's share of one second.
  std::this_thread::sleep_for(1s);
  auto after = group_->Stats();
  auto wall_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ASSERT_TRUE(before && after);
  double share = static_cast<double>(after->cpu_usage_ns - before->cpu_usage_ns) / wall_ns;
  EXPECT_LT(share, 0.40) << "a busy loop limited to 20% of a core used " << share;
  EXPECT_GT(share, 0.01) << "the loop did run";
  ASSERT_TRUE(group_->KillAll());
  ::waitpid(pid, nullptr, 0);
}

TEST_F(CgroupV1Test, KillAllKillsATreeThatLeftItsSessionAndDestroyLeavesNoDirectory) {
  auto g = host_->Create(path_, {.memory_bytes = 64 << 20, .cpu_percent = 50, .pids_max = 64});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t pid = ForkIntoGroup([&] {
    // Daemonized grandchildren: double fork and setsid, out of the leader's session and group.
    for (int i = 0; i < 3; ++i) {
      if (::fork() == 0) {
        ::setsid();
        if (::fork() == 0) {
          pid_t self = ::getpid();
          ssize_t w = ::write(report[1], &self, sizeof(self));
          (void)w;
          ::pause();
        }
        _exit(0);
      }
    }
    ::pause();
  });
  ::close(report[1]);
  std::vector<pid_t> daemons;
  for (int i = 0; i < 3; ++i) {
    pid_t d = 0;
    ASSERT_EQ(::read(report[0], &d, sizeof(d)), static_cast<ssize_t>(sizeof(d)));
    daemons.push_back(d);
  }
  ::close(report[0]);
  for (pid_t d : daemons) {
    ASSERT_TRUE(Alive(d));
    EXPECT_NE(::getsid(d), ::getsid(pid)) << "the daemon left the leader's session";
  }
  // The intermediate children exit right after their fork: wait until they have.
  Result<std::vector<pid_t>> members;
  EXPECT_TRUE(WaitFor([&] {
    members = group_->Pids();
    return members && members->size() == 4u;
  }, 5s)) << "the leader and three daemons: " << (members ? members->size() : 0);

  auto st = group_->Destroy();
  ASSERT_FALSE(st) << "a group with members cannot be removed";
  EXPECT_EQ(st.error().code(), Code::kFailedPrecondition);

  ASSERT_TRUE(group_->KillAll());
  EXPECT_TRUE(group_->Pids()->empty());
  for (pid_t d : daemons) EXPECT_TRUE(WaitFor([&] { return !Alive(d); }, 2s)) << d;
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  ASSERT_TRUE(group_->Destroy());
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "freezer"}) {
    std::string dir = std::string("/sys/fs/cgroup/") + c + "/" + path_;
    EXPECT_NE(::access(dir.c_str(), F_OK), 0) << dir << " is left behind";
  }
  group_.reset();
}

// Reads a cgroup v1 interface file of this test's group, without its newline.
std::string ReadGroupFile(const std::string& controller, const std::string& path, const std::string& file) {
  std::ifstream in("/sys/fs/cgroup/" + controller + "/" + path + "/" + file);
  std::string value;
  std::getline(in, value);
  return value;
}

TEST_F(CgroupV1Test, KillAllOutrunsATreeThatForksWithoutEndAndGivesTheLimitBack) {
  auto g = host_->Create(path_, {.pids_max = 64});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  // Every member forks as fast as it can, and so does every child: the tree stays at the limit.
  pid_t pid = ForkIntoGroup([] {
    for (;;) {
      if (::fork() < 0) ::usleep(100);
    }
  });
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(WaitFor([&] {
    auto members = group_->Pids();
    return members && members->size() >= 32u;
  }, 5s));
  auto st = group_->KillAll();
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_TRUE(group_->Pids()->empty());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  // Not frozen on the way (a killer that died there would leave the tree unkillable), and the
  // group keeps its limit for a next use.
  EXPECT_EQ(ReadGroupFile("freezer", path_, "freezer.state"), "THAWED");
  EXPECT_EQ(ReadGroupFile("pids", path_, "pids.max"), "64");
}

TEST_F(CgroupV1Test, KillAllEndsAGroupThatAnEarlierKillerLeftFrozen) {
  auto g = host_->Create(path_, {.pids_max = 8});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  pid_t pid = AddPausedMember();
  ASSERT_GT(pid, 0);
  std::ofstream("/sys/fs/cgroup/freezer/" + path_ + "/freezer.state") << "FROZEN";
  ASSERT_TRUE(WaitFor([&] { return ReadGroupFile("freezer", path_, "freezer.state") == "FROZEN"; }, 5s));
  auto st = group_->KillAll();
  ASSERT_TRUE(st) << st.error().message();
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(ReadGroupFile("freezer", path_, "freezer.state"), "THAWED");
}

TEST_F(CgroupV1Test, OpenReattachesToAGroupAndReadsItsUsage) {
  auto g = host_->Create(path_, {.memory_bytes = 64 << 20});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  pid_t pid = AddPausedMember();
  ASSERT_GT(pid, 0);
  // A new host object, as after an agent restart.
  auto reopened = CgroupHost::Probe()->Open(path_);
  ASSERT_TRUE(reopened) << reopened.error().message();
  auto members = (*reopened)->Pids();
  ASSERT_TRUE(members);
  EXPECT_EQ(*members, std::vector<pid_t>{pid});
  auto stats = (*reopened)->Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->pids, 1u);
  ASSERT_TRUE((*reopened)->KillAll());
  ::waitpid(pid, nullptr, 0);

  // A gone group is kNotFound; a path out of the hierarchy is refused.
  auto missing = host_->Open("mentat/no-such-group-" + std::to_string(::getpid()));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  auto escape = host_->Create("mentat/../../etc", {});
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().code(), Code::kInvalidArgument);
}

TEST_F(CgroupV1Test, AGroupLeftWithMembersIsNotReused) {
  auto g = host_->Create(path_, {});
  ASSERT_TRUE(g) << g.error().message();
  group_ = std::move(*g);
  pid_t pid = AddPausedMember();
  ASSERT_GT(pid, 0);
  auto again = host_->Create(path_, {.memory_bytes = 8 << 20});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
  EXPECT_NE(again.error().message().find("1 member"), std::string::npos) << again.error().message();
  ASSERT_TRUE(group_->KillAll());
  ::waitpid(pid, nullptr, 0);
}

}  // namespace
}  // namespace mentat
