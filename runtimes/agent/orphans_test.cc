// The crash sweep of orphans.h on real processes: what carries the task id and is not the
// recorded process is killed; the recorded one and everything under it (a namespaced task's
// workload, the child of its PID 1) survive.
#include "runtimes/agent/orphans.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "runtimes/process_testing.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

// `sh -c script` with MENTAT_TASK_ID=task in its environment, as its own process group leader.
pid_t SpawnTask(const std::string& task, const std::string& script) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    std::string env = std::string(kTaskIdEnv) + "=" + task;
    char* envp[] = {env.data(), const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
    execle("/bin/sh", "sh", "-c", script.c_str(), nullptr, envp);
    _exit(127);
  }
  return pid;
}

// The pid of `parent`'s first child, once it has one.
pid_t ChildOf(pid_t parent) {
  pid_t child = 0;
  WaitFor(
      [&] {
        std::string path = "/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children";
        FILE* f = fopen(path.c_str(), "r");
        if (!f) return false;
        int c = 0;
        if (fscanf(f, "%d", &c) == 1) child = c;
        fclose(f);
        return child > 0;
      },
      5s);
  return child;
}

// Whether `pid` has exec'd with the task id in its environment (a child between fork and exec
// still shows its parent's).
bool CarriesTaskId(pid_t pid, const std::string& task) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/environ").c_str(), "r");
  if (!f) return false;
  std::string env;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) env.append(buf, n);
  fclose(f);
  std::string needle = std::string(kTaskIdEnv) + "=" + task;
  return env.find(needle + '\0') != std::string::npos || env.ends_with(needle);
}

// The name `pid` runs under ("sleep"), empty once it is gone.
std::string Comm(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/comm").c_str(), "r");
  if (!f) return "";
  char buf[64] = {0};
  if (!fgets(buf, sizeof(buf), f)) buf[0] = 0;
  fclose(f);
  std::string comm(buf);
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  return comm;
}

TEST(Orphans, TheRecordedProcessAndItsDescendantsSurviveAnUnrecordedOneIsKilled) {
  const std::string task = "default.orphan-test-" + std::to_string(getpid());
  // The recorded "PID 1" with a workload under it (sleep in the background, then wait).
  pid_t recorded = SpawnTask(task, "sleep 60 & wait");
  pid_t workload = ChildOf(recorded);
  ASSERT_GT(workload, 0);
  // A second start that a crash left unrecorded.
  pid_t stray = SpawnTask(task, "exec sleep 60");
  // Another task's process, whose id only shares a prefix.
  pid_t other = SpawnTask(task + "0", "exec sleep 60");
  // Both past their last exec (sh's `exec sleep`): while the kernel replaces a process's image
  // its environment reads empty for a moment, and a sweep in that moment cannot see the id.
  ASSERT_TRUE(WaitFor(
      [&] {
        return Comm(stray) == "sleep" && Comm(other) == "sleep" && CarriesTaskId(stray, task) &&
               CarriesTaskId(other, task + "0");
      },
      10s));

  const int killed = KillUnrecordedProcesses(task, recorded);
  if (killed != 1) kill(stray, SIGKILL);  // fail below, not hang in waitpid
  EXPECT_EQ(killed, 1);
  int status = 0;
  ASSERT_EQ(waitpid(stray, &status, 0), stray);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(Alive(recorded));
  EXPECT_TRUE(Alive(workload)) << "the recorded task's own workload was killed";
  EXPECT_TRUE(Alive(other));

  // With nothing recorded, the whole task goes.
  // PID 1, and its workload unless the kill of PID 1's process group ended it first.
  EXPECT_GE(KillUnrecordedProcesses(task, 0), 1);
  ASSERT_EQ(waitpid(recorded, &status, 0), recorded);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(WaitFor([&] { return !Alive(workload); }, 5s));
  kill(other, SIGKILL);
  waitpid(other, &status, 0);
}

}  // namespace
}  // namespace mentat
