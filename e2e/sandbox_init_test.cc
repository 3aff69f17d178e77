// sandbox-init end to end (the fixture: sandbox_init_fixture.h): PID 1 of a fresh PID namespace
// (clone3 with CLONE_NEWPID, so root), real workloads written in sh. The binary itself: small
// and static. Exit codes and signal deaths with the status line, signals forwarded, orphans
// reaped while the workload runs, exec failures (127, 126, PATH lookup), usage errors.
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "e2e/harness.h"
#include "e2e/sandbox_init_fixture.h"
#include "runtimes/process_testing.h"

namespace mentat::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using mentat::WaitFor;  // process_testing's (every 5 ms), not the harness's

std::string Slurp(const std::string& path) { return ReadFile(path); }

TEST(SandboxInitBinaryTest, IsSmallAndStatic) {
  std::string path = InitBinary();
  ASSERT_TRUE(fs::exists(path)) << path;
  EXPECT_LE(fs::file_size(path), 64u * 1024) << "sandbox-init grew past 64 KB";
  std::string elf = Slurp(path);
  ASSERT_GE(elf.size(), sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof(eh));
  ASSERT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
  ASSERT_EQ(eh.e_ident[EI_CLASS], ELFCLASS64);
  ASSERT_LE(eh.e_phoff + eh.e_phnum * sizeof(Elf64_Phdr), elf.size());
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, elf.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof(ph));
    EXPECT_NE(ph.p_type, static_cast<Elf64_Word>(PT_INTERP)) << "dynamically linked";
    EXPECT_NE(ph.p_type, static_cast<Elf64_Word>(PT_DYNAMIC)) << "has a dynamic section";
  }
}

TEST_F(SandboxInitTest, RunsAsPidOneAndPropagatesTheExitCode) {
  auto init = Sh("test $$ = 2 || { echo \"workload is pid $$\" >&2; exit 1; }; exit 42");
  EXPECT_EQ(ExitCode(init->Wait(10s)), 42) << init->Stderr();
  EXPECT_EQ(init->StatusText(), "{\"exit_code\":42}\n");
}

TEST_F(SandboxInitTest, ExitZeroAndTheWorkloadKeepsItsEnvironment) {
  InitProcess::Options o;
  o.env = {"PATH=/usr/bin:/bin", "GREETING=hello"};
  auto init = Sh("test \"$GREETING\" = hello", o);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 0) << init->Stderr();
  EXPECT_EQ(init->StatusText(), "{\"exit_code\":0}\n");
}

TEST_F(SandboxInitTest, ASignalDeathIs128PlusNAndReportedAsSignal) {
  auto init = Sh("kill -ABRT $$");
  EXPECT_EQ(ExitCode(init->Wait(10s)), 128 + SIGABRT) << init->Stderr();
  EXPECT_EQ(init->StatusText(), "{\"signal\":" + std::to_string(SIGABRT) + "}\n");
}

TEST_F(SandboxInitTest, WithoutStatusFdOnlyTheExitCode) {
  InitProcess::Options o;
  o.status_fd = false;
  auto init = Sh("exit 3", o);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 3) << init->Stderr();
}

TEST_F(SandboxInitTest, SigtermToInitReachesTheWorkload) {
  std::string ready = dir_ + "/ready", got = dir_ + "/got";
  // `wait` is interrupted by the trapped signal; a foreground sleep would delay the trap.
  auto init =
      Sh("trap 'echo term > " + got + "; exit 0' TERM; sleep 1000 & echo > " + ready + "; wait");
  ASSERT_TRUE(WaitFor([&] { return fs::exists(ready); }, 10s)) << init->Stderr();
  ASSERT_EQ(kill(init->pid(), SIGTERM), 0);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 0) << init->Stderr();
  EXPECT_EQ(Slurp(got), "term\n");
  EXPECT_EQ(init->StatusText(), "{\"exit_code\":0}\n");
}

TEST_F(SandboxInitTest, ForwardsEveryCommonSignal) {
  std::string ready = dir_ + "/ready", log = dir_ + "/log";
  const std::vector<std::pair<int, std::string>> signals = {
      {SIGHUP, "HUP"},   {SIGINT, "INT"},     {SIGQUIT, "QUIT"}, {SIGUSR1, "USR1"},
      {SIGUSR2, "USR2"}, {SIGWINCH, "WINCH"}, {SIGALRM, "ALRM"}, {SIGCONT, "CONT"}};
  std::string script;
  for (const auto& [n, name] : signals) {
    script += "trap 'echo " + name + " >> " + log + "' " + name + "; ";
  }
  // Each trap interrupts `wait`; the loop waits again until TERM ends it.
  script += "trap 'exit 7' TERM; sleep 1000 & echo > " + ready + "; while :; do wait; done";
  auto init = Sh(script);
  ASSERT_TRUE(WaitFor([&] { return fs::exists(ready); }, 10s)) << init->Stderr();
  std::string expected;
  for (const auto& [n, name] : signals) {
    ASSERT_EQ(kill(init->pid(), n), 0);
    expected += name + "\n";
    EXPECT_TRUE(WaitFor([&] { return Slurp(log) == expected; }, 10s))
        << name << " was not forwarded; log: " << Slurp(log);
  }
  ASSERT_EQ(kill(init->pid(), SIGTERM), 0);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 7) << init->Stderr();
}

TEST_F(SandboxInitTest, AnUntrappedForwardedSignalKillsTheWorkload) {
  auto init = Start({"/bin/sleep", "1000"});
  // Forwarding starts once the exec is done, so the signal reaches sleep, not a half-made child.
  ASSERT_TRUE(WaitFor([&] { return ChildrenOf(init->pid()).size() == 1; }, 10s));
  ASSERT_EQ(kill(init->pid(), SIGUSR1), 0);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 128 + SIGUSR1) << init->Stderr();
  EXPECT_EQ(init->StatusText(), "{\"signal\":" + std::to_string(SIGUSR1) + "}\n");
}

TEST_F(SandboxInitTest, ReapsOrphansWhileTheWorkloadRuns) {
  // Five orphans block reading a pipe this test holds the write end of; their parents (the
  // subshells) exit at once, so they are reparented to init.
  int gate[2];
  ASSERT_EQ(pipe2(gate, O_CLOEXEC), 0);
  InitProcess::Options o;
  o.extra_fd = gate[0];
  std::string ready = dir_ + "/ready";
  auto init = Sh("for i in 1 2 3 4 5; do ( cat <&4 >/dev/null & ); done; exec 4<&-; echo > " +
                     ready + "; exec sleep 1000",
                 o);
  close(gate[0]);
  ASSERT_TRUE(WaitFor([&] { return fs::exists(ready); }, 10s)) << init->Stderr();
  // Init's own children: the workload and the five orphans.
  ASSERT_TRUE(WaitFor([&] { return ChildrenOf(init->pid()).size() == 6; }, 10s))
      << "children of init: " << ChildrenOf(init->pid()).size();
  // The orphans exit; init must reap them while the workload goes on running.
  close(gate[1]);
  auto no_zombies = [&] {
    auto all = DescendantsOf(init->pid());
    if (all.size() != 1) return false;
    for (pid_t p : all) {
      if (StateOf(p) == 'Z') return false;
    }
    return true;
  };
  EXPECT_TRUE(WaitFor(no_zombies, 10s)) << [&] {
    std::string s;
    for (pid_t p : DescendantsOf(init->pid())) s += std::to_string(p) + ":" + StateOf(p) + " ";
    return "left below init: " + s;
  }();
  auto kids = ChildrenOf(init->pid());
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_EQ(Slurp("/proc/" + std::to_string(kids[0]) + "/comm"), "sleep\n");
  EXPECT_TRUE(Alive(kids[0]));
  ASSERT_EQ(kill(init->pid(), SIGTERM), 0);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 128 + SIGTERM) << init->Stderr();
  EXPECT_EQ(init->StatusText(), "{\"signal\":" + std::to_string(SIGTERM) + "}\n");
}

TEST_F(SandboxInitTest, AMissingProgramIs127WithTheReason) {
  auto init = Start({"/nonexistent/program", "arg"});
  EXPECT_EQ(ExitCode(init->Wait(10s)), 127);
  EXPECT_EQ(init->Stderr(), "sandbox-init: /nonexistent/program: No such file or directory\n");
  EXPECT_EQ(init->StatusText(),
            "{\"exit_code\":127,\"exec_error\":\"No such file or directory\"}\n");
}

TEST_F(SandboxInitTest, ANameIsSearchedOnThePathOfTheEnvironment) {
  InitProcess::Options o;
  o.env = {"PATH=/nonexistent:/usr/bin:/bin"};
  auto init = Start({"sh", "-c", "exit 5"}, o);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 5) << init->Stderr();

  o.env = {"PATH=/nonexistent"};
  auto missing = Start({"sh", "-c", "exit 5"}, o);
  EXPECT_EQ(ExitCode(missing->Wait(10s)), 127);
  EXPECT_EQ(missing->Stderr(), "sandbox-init: sh: No such file or directory\n");
}

TEST_F(SandboxInitTest, ANonExecutableProgramIs126) {
  std::string script = dir_ + "/not-executable";
  std::ofstream(script) << "#!/bin/sh\nexit 0\n";
  fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
  auto init = Start({script});
  EXPECT_EQ(ExitCode(init->Wait(10s)), 126);
  EXPECT_EQ(init->Stderr(), "sandbox-init: " + script + ": Permission denied\n");
  EXPECT_EQ(init->StatusText(), "{\"exit_code\":126,\"exec_error\":\"Permission denied\"}\n");
}

TEST_F(SandboxInitTest, TheWorkloadDoesNotInheritTheStatusFd) {
  auto init = Sh("test -e /proc/self/fd/3 && exit 1; exit 0");
  EXPECT_EQ(ExitCode(init->Wait(10s)), 0) << "fd 3 leaked into the workload";
}

TEST_F(SandboxInitTest, TheExecFdClosesOnceTheWorkloadRunsAndIsNotInherited) {
  std::unique_ptr<InitProcess> init;
  // A static workload: a dynamic one's loader opens its libraries on fd 3 right after the exec,
  // which would look like an inherited descriptor to the check below.
  ASSERT_TRUE(StartAwaitingExec(*this, {"/bin/busybox", "sleep", "1000"}, &init)) << init->Stderr();
  // At EOF the workload is already busybox, not a copy of init, and holds neither fd 3 nor 4.
  auto kids = ChildrenOf(init->pid());
  ASSERT_EQ(kids.size(), 1u);
  const std::string proc = "/proc/" + std::to_string(kids[0]);
  EXPECT_EQ(Slurp(proc + "/comm"), "busybox\n");
  EXPECT_FALSE(fs::exists(proc + "/fd/3"));
  EXPECT_FALSE(fs::exists(proc + "/fd/4"));
  ASSERT_EQ(kill(init->pid(), SIGTERM), 0);
  EXPECT_EQ(ExitCode(init->Wait(10s)), 128 + SIGTERM) << init->Stderr();
}

TEST_F(SandboxInitTest, TheExecFdClosesWhenTheExecFailsAndTheStatusSaysWhy) {
  std::unique_ptr<InitProcess> init;
  ASSERT_TRUE(StartAwaitingExec(*this, {"/nonexistent/program"}, &init)) << init->Stderr();
  // EOF came after the status line: it is there to read at once.
  EXPECT_TRUE(init->StatusReady());
  EXPECT_EQ(ExitCode(init->Wait(10s)), 127);
  EXPECT_EQ(init->StatusText(), "{\"exit_code\":127,\"exec_error\":\"No such file or directory\"}\n");
}

// --adopt (hull's way): the workload forked before sandbox-init's exec is reaped, its code
// reported, signals reach it, and a failed exec is named.
TEST_F(SandboxInitTest, AnAdoptedWorkloadIsTheOneItWaitsForAndSignals) {
  InitProcess::Options o;
  o.adopt = true;
  auto code = Sh("exit 7", o);
  EXPECT_EQ(ExitCode(code->Wait(10s)), 7) << code->Stderr();
  EXPECT_EQ(code->StatusText(), "{\"exit_code\":7}\n");

  std::string ready = dir_ + "/ready";
  auto term = Sh("trap 'exit 3' TERM; echo > " + ready + "; while true; do sleep 0.1; done", o);
  ASSERT_TRUE(WaitFor([&] { return fs::exists(ready); }, 10s)) << term->Stderr();
  ASSERT_EQ(kill(term->pid(), SIGTERM), 0);
  EXPECT_EQ(ExitCode(term->Wait(10s)), 3) << term->Stderr();

  auto missing = Start({"/nonexistent/program"}, o);
  EXPECT_EQ(ExitCode(missing->Wait(10s)), 127);
  EXPECT_EQ(missing->Stderr(), "sandbox-init: /nonexistent/program: No such file or directory\n");
  EXPECT_EQ(missing->StatusText(), "{\"exit_code\":127,\"exec_error\":\"No such file or directory\"}\n");
}

TEST_F(SandboxInitTest, UsageErrorsExit2) {
  std::string err;
  EXPECT_EQ(RunDirect(dir_, {}, &err), 2);
  EXPECT_NE(err.find("usage: sandbox-init [--status-fd N] [--exec-fd N] [--adopt PID --exec-error-fd N] -- PROGRAM [ARGS...]"),
            std::string::npos)
      << err;
  EXPECT_EQ(RunDirect(dir_, {"/bin/true"}, &err), 2);
  EXPECT_NE(err.find("expected -- before the program"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--"}, &err), 2);
  EXPECT_NE(err.find("no program given"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--status-fd", "x", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--status-fd needs a file descriptor number"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--status-fd", "9", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--status-fd is not an open file descriptor"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--exec-fd", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--exec-fd needs a file descriptor number"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--status-fd", "2", "--exec-fd", "2", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--exec-fd must be above 2 and differ from --status-fd"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--adopt", "2", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--adopt and --exec-error-fd go together"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--adopt", "0", "--exec-error-fd", "5", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--adopt needs a process id"), std::string::npos) << err;
  EXPECT_EQ(RunDirect(dir_, {"--adopt", "1", "--exec-error-fd", "2", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--exec-error-fd must be above 2"), std::string::npos) << err;

  EXPECT_EQ(RunDirect(dir_, {"--exec-fd", "9", "--", "/bin/true"}, &err), 2);
  EXPECT_NE(err.find("--exec-fd is not an open file descriptor"), std::string::npos) << err;
}

}  // namespace
}  // namespace mentat::e2e
