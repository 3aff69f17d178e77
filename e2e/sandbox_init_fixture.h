// The fixture of sandbox-init's end-to-end tests (sandbox_init_test.cc): the real binary
// (//cmd/sandbox-init) started as PID 1 of a fresh PID namespace (clone3 with CLONE_NEWPID, so
// root), or directly for its usage errors, and what the host sees of the processes below it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mentat::e2e {

// The sandbox-init binary in the runfiles.
std::string InitBinary();

// The pids of `pid`'s children, from /proc (the host's view of the namespace).
std::vector<pid_t> ChildrenOf(pid_t pid);

// `pid`'s state letter from /proc/<pid>/stat ('Z' for a zombie); '?' when it is gone.
char StateOf(pid_t pid);

// Every process below `pid`, depth first.
std::vector<pid_t> DescendantsOf(pid_t pid);

// One sandbox-init started as PID 1 of a new PID namespace. Its stderr goes to a file; with a
// status pipe, the read end stays here and the write end is the child's fd 3.
class InitProcess {
 public:
  struct Options {
    bool status_fd = true;
    std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
    int extra_fd = -1;  // dup2'ed to the child's fd 4 when set
    bool exec_fd = false;  // and named by --exec-fd
    // The workload is forked before sandbox-init is exec'd, as hull does, and adopted: it is
    // pid 2 of the namespace, and its exec's errno pipe is the child's fd 5.
    bool adopt = false;
  };

  InitProcess(const std::string& dir, std::vector<std::string> args, Options o);
  ~InitProcess();

  pid_t pid() const { return pid_; }

  // The exit status (as waitpid reports it), or nullopt when it did not exit within `deadline`.
  std::optional<int> Wait(std::chrono::milliseconds deadline);

  // Everything written to the status fd (read to EOF: call after Wait).
  std::string StatusText();

  std::string Stderr() const;

  // Whether the status line can be read now, without waiting.
  bool StatusReady() const;

 private:
  std::string stderr_path_;
  pid_t pid_ = -1;
  int status_read_ = -1;
  bool reaped_ = false;
};

// A directory of its own per test, and sandbox-init started in it.
class SandboxInitTest : public ::testing::Test {
 public:
  void SetUp() override;
  std::unique_ptr<InitProcess> Start(std::vector<std::string> args, InitProcess::Options o = {});
  std::unique_ptr<InitProcess> Sh(const std::string& script, InitProcess::Options o = {});
  std::string dir_;
};

// The exit code of a sandbox-init that exited (EXPECTs that it did, by itself); -1 otherwise.
int ExitCode(std::optional<int> st);

// Starts `args` under sandbox-init --exec-fd 4 and waits for that fd's EOF: true when it came.
bool StartAwaitingExec(SandboxInitTest& t, std::vector<std::string> args, std::unique_ptr<InitProcess>* init);

// Runs sandbox-init directly (no namespace) and returns its exit code; stderr into `err`.
int RunDirect(const std::string& dir, std::vector<std::string> args, std::string* err);

}  // namespace mentat::e2e
