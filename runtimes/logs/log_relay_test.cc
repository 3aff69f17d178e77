// The log relay (cmd/log-relay) on real pipes and processes: stdout and stderr read back merged
// in the order they were written, a bounded index, the relay's exit after the workload, its
// survival of a SIGTERM to its starter's process group, and rotation under it.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "runtimes/exec/log_relay_process.h"
#include "runtimes/logs/log_index.h"
#include "runtimes/logs/log_merge.h"
#include "runtimes/logs/log_testing.h"
#include "runtimes/process_testing.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// /bin/sh -c `script` with stdout and stderr on the relay's pipes, in a session of its own (as
// a driver starts a task); the parent's copies of the pipes are closed.
pid_t SpawnShell(const std::string& script, LogRelay& relay) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    ::dup2(relay.out_fd, 1);
    ::dup2(relay.err_fd, 2);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), nullptr);
    _exit(127);
  }
  ::close(relay.out_fd);
  ::close(relay.err_fd);
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// A shell script that writes "out<i>" to stdout and "err<i>" to stderr, `n` times each,
// alternating, each line once the last one is in `dir`'s logs (the relay wrote it).
std::string AlternatingScript(int n, const std::string& dir) {
  return "written() { until grep -qx \"$1\" \"$2\" 2>/dev/null; do :; done; }; i=0; while [ $i -lt " +
         std::to_string(n) + " ]; do echo out$i; written out$i " + dir + "/stdout.log; echo err$i >&2; "
         "written err$i " + dir + "/stderr.log; i=$((i+1)); done";
}

class LogRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    relay_path_ = FindLogRelay();
    ASSERT_FALSE(relay_path_.empty()) << "log-relay is a data dependency of this test";
  }
  LogRelay Start(LogLimits limits = {}) {
    auto relay = StartLogRelay(relay_path_, dir_, limits);
    EXPECT_TRUE(relay) << relay.error().message();
    return relay ? *relay : LogRelay{};
  }
  std::string dir_, relay_path_;
};

TEST_F(LogRelayTest, AlternatingStreamsMergeInTheOrderTheyWereWrittenAndTheRelayExits) {
  LogRelay relay = Start();
  ASSERT_GT(relay.pid, 0);
  EXPECT_TRUE(Alive(relay.pid));
  // Each line once the relay has written the one before: the order the relay reads is the
  // order written. (Writes to both streams faster than the relay reads, as when it is not
  // scheduled, are found in both pipes at once; log_relay.h.)
  pid_t sh = SpawnShell(AlternatingScript(200, dir_), relay);
  EXPECT_EQ(WaitExit(sh), 0);
  // Every writer of its pipes is gone: the relay drains them and exits by itself.
  ASSERT_TRUE(WaitFor([&] { return !Alive(relay.pid); }, 10s)) << "the relay outlived its workload";
  EXPECT_EQ(MergedLines(dir_), AlternatingLines(200));
  // Index times are nanoseconds, strictly increasing across both streams.
  auto out = ReadIndex(dir_ + "/stdout.idx"), err = ReadIndex(dir_ + "/stderr.idx");
  ASSERT_FALSE(out.empty());
  ASSERT_FALSE(err.empty());
  EXPECT_GT(out.front().time_ns, kNsIndexFloor);
  std::vector<int64_t> times;
  for (const auto& r : out) times.push_back(r.time_ns);
  for (const auto& r : err) times.push_back(r.time_ns);
  std::sort(times.begin(), times.end());
  EXPECT_TRUE(std::adjacent_find(times.begin(), times.end()) == times.end()) << "two records share a time";
}

TEST_F(LogRelayTest, OneStreamsBurstCoalescesIntoFewRecords) {
  LogRelay relay = Start();
  auto started = std::chrono::steady_clock::now();
  pid_t sh = SpawnShell("i=0; while [ $i -lt 5000 ]; do echo line $i; i=$((i+1)); done", relay);
  EXPECT_EQ(WaitExit(sh), 0);
  ASSERT_TRUE(WaitFor([&] { return !Alive(relay.pid); }, 10s));
  auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  // 5000 writes in one burst: at most one record a coalescing window (100 ms), plus the first.
  auto records = ReadIndex(dir_ + "/stdout.idx");
  EXPECT_LE(static_cast<int64_t>(records.size()), elapsed_ms / 100 + 2) << "after " << elapsed_ms << " ms";
  EXPECT_EQ(records.back().size, static_cast<int64_t>(fs::file_size(dir_ + "/stdout.log")));
  EXPECT_EQ(MergedLines(dir_).size(), 5000u);
}

TEST_F(LogRelayTest, TheWriterCoalescesOnlyABurstOfTheSameStream) {
  auto w = TaskLogWriter::Open(dir_, {});
  ASSERT_TRUE(w);
  const int64_t t0 = 1'800'000'000'000'000'000;
  const int64_t ms = 1'000'000;
  ASSERT_TRUE((*w)->Append(LogStream::kStdout, "a\n", t0));
  ASSERT_TRUE((*w)->Append(LogStream::kStdout, "b\n", t0 + 5 * ms));   // in the burst: same record
  ASSERT_TRUE((*w)->Append(LogStream::kStderr, "c\n", t0 + 6 * ms));   // the stream switched
  ASSERT_TRUE((*w)->Append(LogStream::kStdout, "d\n", t0 + 6 * ms));   // switched back, same time
  ASSERT_TRUE((*w)->Append(LogStream::kStdout, "e\n", t0 + 50 * ms));  // after a pause
  // A steady trickle, 5 ms apart: a new record every 100 ms.
  for (int k = 1; k <= 40; ++k) ASSERT_TRUE((*w)->Append(LogStream::kStdout, "f\n", t0 + (50 + 5 * k) * ms));
  auto out = ReadIndex(dir_ + "/stdout.idx"), err = ReadIndex(dir_ + "/stderr.idx");
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].time_ns, t0);
  EXPECT_EQ(out[0].size, 4);
  EXPECT_EQ(out[1].time_ns, t0 + 6 * ms + 1) << "a time at or before the last becomes the last + 1";
  EXPECT_EQ(out[2].time_ns, t0 + 50 * ms);
  EXPECT_EQ(out[3].time_ns, t0 + 150 * ms);
  EXPECT_EQ(out[4].time_ns, t0 + 250 * ms);
  EXPECT_EQ(out[4].size, 8 + 40 * 2);
  ASSERT_EQ(err.size(), 1u);
  auto lines = MergedLines(dir_);
  ASSERT_GE(lines.size(), 5u);
  EXPECT_EQ(std::vector<std::string>(lines.begin(), lines.begin() + 5),
            (std::vector<std::string>{"stdout: a", "stdout: b", "stderr: c", "stdout: d", "stdout: e"}));
}

TEST_F(LogRelayTest, TheRelaySurvivesASigtermToItsStartersProcessGroupAndLosesNothing) {
  // A stand-in for the agent: its own process group, which starts the relay and a workload that
  // writes once the test says go, then waits to be killed (as a node's agent is on a restart).
  int pids[2];
  ASSERT_EQ(::pipe(pids), 0);
  const std::string go = dir_ + "/go";
  pid_t agent = ::fork();
  if (agent == 0) {
    ::setpgid(0, 0);
    auto relay = StartLogRelay(relay_path_, dir_, {});
    if (!relay) _exit(1);
    pid_t workload = SpawnShell("while [ ! -f " + go + " ]; do sleep 0.01; done; "
                                "i=0; while [ $i -lt 1000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done",
                                *relay);
    // In a session of its own before the agent's group is signalled, as a driver's task is.
    while (::getsid(workload) != workload) ::sched_yield();
    ssize_t w = ::write(pids[1], &relay->pid, sizeof(relay->pid));
    (void)w;
    ::pause();
    _exit(0);
  }
  ::close(pids[1]);
  int relay_pid = 0;
  ASSERT_EQ(::read(pids[0], &relay_pid, sizeof(relay_pid)), static_cast<ssize_t>(sizeof(relay_pid)));
  ::close(pids[0]);
  // The agent's process group is told to stop, then the agent is killed outright.
  ASSERT_EQ(::kill(-agent, SIGTERM), 0);
  WaitExit(agent);
  EXPECT_TRUE(Alive(relay_pid)) << "the relay went with its starter";
  std::ofstream(go).put('\n');
  ASSERT_TRUE(WaitFor([&] { return !Alive(relay_pid); }, 20s)) << "the relay did not exit after the workload";
  auto lines = MergedLines(dir_);
  ASSERT_EQ(lines.size(), 2000u);
  std::set<std::string> seen(lines.begin(), lines.end());
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(seen.count("stdout: out" + std::to_string(i))) << i;
    EXPECT_TRUE(seen.count("stderr: err" + std::to_string(i))) << i;
  }
}

TEST_F(LogRelayTest, RotationUnderTheRelayKeepsEveryByteAndOffsetsValid) {
  // About 3.5 MB through a 256 KiB limit: a dozen rotations, all kept in the archives.
  LogRelay relay = Start({.max_file_bytes = 256 << 10, .max_files = 30});
  // stderr's lines by a process of their own, after a pause, so that the relay has read
  // stdout's before them.
  pid_t sh = SpawnShell("i=0; while [ $i -lt 50000 ]; do "
                        "echo \"n $i of the output that must all arrive in order, padded\"; "
                        "if [ $((i % 500)) -eq 0 ]; then sleep 0.01; /bin/echo \"e $i\" >&2; sleep 0.01; fi; "
                        "i=$((i+1)); done",
                        relay);
  EXPECT_EQ(WaitExit(sh), 0);
  ASSERT_TRUE(WaitFor([&] { return !Alive(relay.pid); }, 30s));
  EXPECT_TRUE(fs::exists(dir_ + "/stdout.log.1"));
  EXPECT_GT(fs::file_size(dir_ + "/stdout.log"), 2'900'000u) << "offsets count every byte written";
  struct stat st {};
  ::stat((dir_ + "/stdout.log").c_str(), &st);
  EXPECT_LE(st.st_blocks * 512, (256 << 10) + (64 << 10)) << "the live part is bounded";
  auto lines = MergedLines(dir_);
  long n = 0, e = 0;
  for (const auto& l : lines) {
    if (l.rfind("stdout: n ", 0) == 0) {
      ASSERT_EQ(std::atol(l.c_str() + 10), n) << "a gap or a repeat in stdout";
      ++n;
    } else {
      ASSERT_EQ(l, "stderr: e " + std::to_string(e * 500)) << "stderr out of order";
      // Written right after line e*500 of stdout: merged right after it.
      ASSERT_EQ(n, e * 500 + 1) << "stderr's line is not where it was written";
      ++e;
    }
  }
  EXPECT_EQ(n, 50000);
  EXPECT_EQ(e, 100);
  // A follower that resumes from any offset of the stream goes on from there.
  LogCursor from;
  from.offset[0] = static_cast<int64_t>(fs::file_size(dir_ + "/stdout.log")) - 64;
  from.offset[1] = static_cast<int64_t>(fs::file_size(dir_ + "/stderr.log"));
  auto rest = ReadMerged(dir_, from, {});
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().content, "n 49999 of the output that must all arrive in order, padded");
}

}  // namespace
}  // namespace mentat
