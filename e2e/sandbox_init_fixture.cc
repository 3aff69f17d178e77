#include "e2e/sandbox_init_fixture.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "e2e/harness.h"
#include "runtimes/process_testing.h"

namespace mentat::e2e {
namespace {

namespace fs = std::filesystem;

// Waits (up to 10 s) for EOF on `fd`: true when it came. Bytes before it are a failure.
bool AwaitEof(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) return false;
  char c;
  return read(fd, &c, 1) == 0;
}

}  // namespace

std::string InitBinary() { return Runfile("cmd/sandbox-init/sandbox-init"); }

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t p; f >> p;) out.push_back(p);
  return out;
}

char StateOf(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

std::vector<pid_t> DescendantsOf(pid_t pid) {
  std::vector<pid_t> out;
  for (pid_t c : ChildrenOf(pid)) {
    out.push_back(c);
    for (pid_t d : DescendantsOf(c)) out.push_back(d);
  }
  return out;
}

InitProcess::InitProcess(const std::string& dir, std::vector<std::string> args, Options o)
    : stderr_path_(dir + "/init.stderr") {
  int status_pipe[2] = {-1, -1};
  if (o.status_fd) {
    EXPECT_EQ(pipe2(status_pipe, O_CLOEXEC), 0);
    status_read_ = status_pipe[0];
  }
  std::vector<std::string> argv = {InitBinary()};
  if (o.status_fd) argv.insert(argv.end(), {"--status-fd", "3"});
  if (o.exec_fd) argv.insert(argv.end(), {"--exec-fd", "4"});
  if (o.adopt) argv.insert(argv.end(), {"--adopt", "2", "--exec-error-fd", "5"});
  argv.push_back("--");
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv, cenv, wargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& a : args) wargv.push_back(a.data());
  wargv.push_back(nullptr);
  for (auto& e : o.env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // Copies above the child's 3 and 4, so that one dup2 cannot close the other's source.
  int status_w = o.status_fd ? fcntl(status_pipe[1], F_DUPFD_CLOEXEC, 64) : -1;
  int extra = o.extra_fd >= 0 ? fcntl(o.extra_fd, F_DUPFD_CLOEXEC, 64) : -1;

  clone_args ca{};
  ca.flags = CLONE_NEWPID;
  ca.exit_signal = SIGCHLD;
  pid_ = static_cast<pid_t>(syscall(SYS_clone3, &ca, sizeof(ca)));
  if (pid_ == 0) {
    // Only async-signal-safe calls from here to exec.
    if (status_w >= 0) dup2(status_w, 3);
    if (extra >= 0) dup2(extra, 4);
    dup2(err, 2);
    if (o.adopt) {
      sigset_t all, none;
      sigfillset(&all);
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &all, nullptr);
      int ep[2];
      if (pipe2(ep, O_CLOEXEC) != 0) _exit(98);
      pid_t w = fork();
      if (w == 0) {
        close(3);
        close(4);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        execve(wargv[0], wargv.data(), cenv.data());
        int e = errno;
        ssize_t n = write(ep[1], &e, sizeof(e));
        (void)n;
        _exit(e == EACCES ? 126 : 127);
      }
      close(ep[1]);
      if (dup2(ep[0], 5) != 5) _exit(97);
    }
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(99);
  }
  EXPECT_GT(pid_, 0) << strerror(errno);
  close(err);
  if (o.status_fd) close(status_pipe[1]);
  if (status_w >= 0) close(status_w);
  if (extra >= 0) close(extra);
}

InitProcess::~InitProcess() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (status_read_ >= 0) close(status_read_);
}

std::optional<int> InitProcess::Wait(std::chrono::milliseconds deadline) {
  int st = 0;
  // process_testing's WaitFor (every 5 ms), not the harness's.
  bool done = mentat::WaitFor([&] { return waitpid(pid_, &st, WNOHANG) == pid_; }, deadline);
  if (!done) return std::nullopt;
  reaped_ = true;
  return st;
}

std::string InitProcess::StatusText() {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(status_read_, buf, sizeof(buf))) > 0;) out.append(buf, n);
  return out;
}

std::string InitProcess::Stderr() const { return ReadFile(stderr_path_); }

bool InitProcess::StatusReady() const {
  pollfd p{status_read_, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void SandboxInitTest::SetUp() {
  dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
         "/sandbox-init-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  fs::remove_all(dir_);
  fs::create_directories(dir_);
}

std::unique_ptr<InitProcess> SandboxInitTest::Start(std::vector<std::string> args, InitProcess::Options o) {
  return std::make_unique<InitProcess>(dir_, std::move(args), std::move(o));
}

std::unique_ptr<InitProcess> SandboxInitTest::Sh(const std::string& script, InitProcess::Options o) {
  return Start({"/bin/sh", "-c", script}, std::move(o));
}

int ExitCode(std::optional<int> st) {
  EXPECT_TRUE(st.has_value()) << "sandbox-init did not exit in time";
  if (!st) return -1;
  EXPECT_TRUE(WIFEXITED(*st)) << "sandbox-init itself was killed: status " << *st;
  return WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
}

bool StartAwaitingExec(SandboxInitTest& t, std::vector<std::string> args, std::unique_ptr<InitProcess>* init) {
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) return false;
  InitProcess::Options o;
  o.extra_fd = exec_pipe[1];
  o.exec_fd = true;
  *init = t.Start(std::move(args), o);
  close(exec_pipe[1]);
  bool eof = AwaitEof(exec_pipe[0]);
  close(exec_pipe[0]);
  return eof;
}

int RunDirect(const std::string& dir, std::vector<std::string> args, std::string* err) {
  std::vector<std::string> argv = {InitBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c;
  for (auto& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  std::string err_path = dir + "/direct.stderr";
  int fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, 2);
    execv(c[0], c.data());
    _exit(99);
  }
  close(fd);
  int st = 0;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
  *err = ReadFile(err_path);
  return WEXITSTATUS(st);
}

}  // namespace mentat::e2e
