#include "runtimes/exec/exec_session.h"

#include "runtimes/cgroups/cgroups.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace mentat {
namespace {

using namespace std::chrono_literals;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

int PidfdOpen(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// write() that reports a closed reader as EPIPE without a SIGPIPE reaching the process: the
// signal is blocked in this thread and a pending one consumed.
ssize_t WriteNoSigpipe(int fd, const char* data, size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t w = ::write(fd, data, n);
  int err = errno;
  if (w < 0 && err == EPIPE) {
    timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return w;
}

class HostExecSession : public ExecSession {
 public:
  HostExecSession(int pid, int pidfd, int in_fd, int out_fd, int err_fd, bool tty,
                  ExecCallbacks callbacks)
      : pid_(pid), pidfd_(pidfd), in_fd_(in_fd), out_fd_(out_fd), err_fd_(err_fd), tty_(tty),
        callbacks_(std::move(callbacks)) {
    pump_ = std::thread([this] { Pump(); });
  }

  ~HostExecSession() override {
    Kill();
    if (pump_.joinable()) pump_.join();
    CloseFd(pidfd_);
    CloseFd(out_fd_);
    CloseFd(err_fd_);
    std::lock_guard<std::mutex> lock(in_mu_);
    CloseFd(in_fd_);
  }

  Status WriteStdin(std::string_view data) override {
    std::lock_guard<std::mutex> lock(in_mu_);
    if (in_fd_ < 0) return FailedPrecondition("stdin is closed");
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!data.empty()) {
      ssize_t w = WriteNoSigpipe(in_fd_, data.data(), data.size());
      if (w > 0) {
        data.remove_prefix(static_cast<size_t>(w));
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno != EAGAIN) {
        if (errno == EPIPE || errno == EIO) return FailedPrecondition("the command has closed its stdin");
        return ErrnoError("exec: writing stdin", errno);
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Unavailable("the command is not reading its stdin");
      pollfd p{in_fd_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
    return {};
  }

  Status CloseStdin() override {
    if (tty_) {
      // A terminal has no end of input of its own: type what a user would (VEOF, ^D).
      return WriteStdin(std::string_view("\x04", 1));
    }
    std::lock_guard<std::mutex> lock(in_mu_);
    CloseFd(in_fd_);
    return {};
  }

  Status Resize(unsigned short rows, unsigned short cols) override {
    if (!tty_) return FailedPrecondition("the session has no terminal to resize");
    winsize ws{};
    ws.ws_row = rows;
    ws.ws_col = cols;
    if (::ioctl(out_fd_, TIOCSWINSZ, &ws) != 0) return ErrnoError("exec: resizing the terminal", errno);
    return {};
  }

  void Kill() override {
    std::lock_guard<std::mutex> lock(mu_);
    // Until the leader is reaped its pid cannot be reused, so the group is still ours.
    if (!reaped_) ::kill(-pid_, SIGKILL);
  }

  std::optional<ExitResult> Wait(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return exit_.has_value(); });
    return exit_;
  }

 private:
  // Reads until the command exits, then what is left in the pipes (or the terminal), then reaps.
  void Pump() {
    pollfd fds[3] = {{pidfd_, POLLIN, 0}, {out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    auto read_ready = [&](int wait_ms) {
      int n = ::poll(fds + 1, 2, wait_ms);
      if (n <= 0) return false;
      for (int i = 1; i < 3; ++i) ReadOne(fds[i], i == 1 ? ExecStream::kStdout : ExecStream::kStderr);
      return true;
    };
    while (true) {
      int n = ::poll(fds, 3, -1);
      if (n < 0 && errno == EINTR) continue;
      for (int i = 1; i < 3; ++i) ReadOne(fds[i], i == 1 ? ExecStream::kStdout : ExecStream::kStderr);
      if (fds[0].revents) break;
    }
    // The leader has exited (a zombie, not yet reaped). What it left running in its group goes
    // with it: an exec session leaves nothing behind.
    ::kill(-pid_, SIGKILL);
    // Output still in flight: until every writer is gone (EOF), or a short silence (a terminal's
    // buffer is pushed to the master asynchronously, and a killed straggler may hold it open).
    while ((fds[1].fd >= 0 || fds[2].fd >= 0) && read_ready(100)) {
    }
    ExitResult result;
    {
      std::lock_guard<std::mutex> lock(mu_);
      siginfo_t info{};
      if (waitid(static_cast<idtype_t>(3) /*P_PIDFD*/, pidfd_, &info, WEXITED) == 0) {
        if (info.si_code == CLD_EXITED) {
          result.exit_code = info.si_status;
          result.message = "exited with code " + std::to_string(info.si_status);
        } else {
          result.signal = info.si_status;
          result.message = std::string("killed by signal ") + strsignal(info.si_status);
        }
      } else {
        result.message = std::string("exit status unknown: ") + strerror(errno);
      }
      reaped_ = true;
      exit_ = result;
    }
    cv_.notify_all();
    if (callbacks_.exit) callbacks_.exit(result);
  }

  void ReadOne(pollfd& p, ExecStream stream) {
    if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) return;
    char buf[65536];
    ssize_t n = ::read(p.fd, buf, sizeof(buf));
    if (n > 0) {
      if (callbacks_.output) callbacks_.output(stream, std::string_view(buf, static_cast<size_t>(n)));
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    p.fd = -1;  // EOF, or EIO: a terminal whose last writer is gone. poll ignores it from now.
  }

  const int pid_;
  int pidfd_;
  int in_fd_;   // the stdin pipe, or a dup of the terminal's master
  int out_fd_;  // stdout, or the terminal's master
  int err_fd_;  // -1 with a terminal
  const bool tty_;
  ExecCallbacks callbacks_;
  std::thread pump_;
  std::mutex in_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool reaped_ = false;
  std::optional<ExitResult> exit_;
};

// /proc/<pid>/status: the first (real) id of a "Uid:" or "Gid:" line, and "Groups:".
Status ReadIds(int pid, ProcessContext* ctx) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  if (!f) return NotFound("process " + std::to_string(pid) + " is gone");
  std::string line;
  bool uid = false, gid = false;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string key;
    in >> key;
    if (key == "Uid:") uid = static_cast<bool>(in >> ctx->uid);
    if (key == "Gid:") gid = static_cast<bool>(in >> ctx->gid);
    if (key == "Groups:") {
      gid_t g;
      while (in >> g) ctx->groups.push_back(g);
    }
  }
  if (!uid || !gid) return NotFound("process " + std::to_string(pid) + " is gone");
  return {};
}

}  // namespace

std::string ResolveOnPath(const std::string& command, const std::string& path_env,
                          const std::string& root) {
  if (command.find('/') != std::string::npos) return command;
  std::stringstream ss(path_env.empty() ? std::string(kDefaultPath) : path_env);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + command;
    if (::access((root + candidate).c_str(), X_OK) == 0) return candidate;
  }
  return command;
}

void ResetSignalsInChild() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; ++s) signal(s, SIG_DFL);
}

int ChildExecError(int errpipe_read, pid_t pid) {
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(errpipe_read, &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(errpipe_read);
  if (n <= 0) return 0;
  ::waitpid(pid, nullptr, 0);
  return child_errno == 0 ? EIO : child_errno;
}

Result<ProcessContext> ReadProcessContext(int pid) {
  ProcessContext ctx;
  std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream environ(proc + "/environ", std::ios::binary);
  if (!environ) return NotFound("process " + std::to_string(pid) + " is gone");
  std::string var;
  while (std::getline(environ, var, '\0')) {
    if (!var.empty()) ctx.env.push_back(var);
  }
  char buf[4096];
  ssize_t n = ::readlink((proc + "/cwd").c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return NotFound("process " + std::to_string(pid) + " is gone");
  ctx.cwd.assign(buf, static_cast<size_t>(n));
  MT_RETURN_IF_ERROR(ReadIds(pid, &ctx));
  return ctx;
}

Result<ExecSessionPtr> StartExecSession(const ProcessContext& context, const ExecOptions& options,
                                        ExecCallbacks callbacks,
                                        const std::vector<int>& cgroup_procs_fds,
                                        const std::function<int()>& enter) {
  if (options.command.empty() || options.command[0].empty()) {
    return InvalidArgument("exec: command is required");
  }
  // Everything the child needs is built before fork: it may only call async-signal-safe
  // functions.
  std::string path_env;
  std::vector<std::string> env_s = context.env;
  bool has_term = false;
  for (const auto& e : env_s) {
    if (e.rfind("PATH=", 0) == 0) path_env = e.substr(5);
    has_term |= e.rfind("TERM=", 0) == 0;
  }
  if (path_env.empty()) env_s.push_back(std::string("PATH=") + kDefaultPath);
  if (options.tty && !has_term) env_s.push_back("TERM=xterm");
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string path = ResolveOnPath(options.command[0], path_env, context.root);
  std::vector<std::string> argv_s = options.command;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  bool switch_user = context.uid != ::geteuid() || context.gid != ::getegid();
  std::vector<gid_t> groups = context.groups;

  // The parent's ends (in, out, err) and the child's (child_in, child_out, child_err).
  int in = -1, out = -1, err = -1, child_in = -1, child_out = -1, child_err = -1;
  auto close_all = [&] {
    for (int* fd : {&in, &out, &err, &child_in, &child_out, &child_err}) CloseFd(*fd);
  };
  if (options.tty) {
    out = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (out < 0) return ErrnoError("exec: posix_openpt", errno);
    char name[128];
    if (::grantpt(out) != 0 || ::unlockpt(out) != 0 || ::ptsname_r(out, name, sizeof(name)) != 0) {
      int e = errno;
      close_all();
      return ErrnoError("exec: setting up the terminal", e);
    }
    winsize ws{};
    ws.ws_row = options.rows;
    ws.ws_col = options.cols;
    ::ioctl(out, TIOCSWINSZ, &ws);
    child_out = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (child_out < 0) {
      int e = errno;
      close_all();
      return ErrnoError(std::string("exec: opening ") + name, e);
    }
    // Input is typed into the same terminal, through an fd of its own; none without stdin.
    if (options.stdin) in = ::fcntl(out, F_DUPFD_CLOEXEC, 0);
  } else {
    int o[2], e[2];
    if (::pipe2(o, O_CLOEXEC) != 0) return ErrnoError("exec: pipe2", errno);
    if (::pipe2(e, O_CLOEXEC) != 0) {
      int en = errno;
      ::close(o[0]);
      ::close(o[1]);
      return ErrnoError("exec: pipe2", en);
    }
    out = o[0], child_out = o[1], err = e[0], child_err = e[1];
    ::fcntl(out, F_SETFL, O_NONBLOCK);
    ::fcntl(err, F_SETFL, O_NONBLOCK);
    if (options.stdin) {
      int i[2];
      if (::pipe2(i, O_CLOEXEC) != 0) {
        int en = errno;
        close_all();
        return ErrnoError("exec: pipe2", en);
      }
      child_in = i[0], in = i[1];
      ::fcntl(in, F_SETFL, O_NONBLOCK);
    } else {
      child_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
  }
  if (!options.tty && options.stdin == false && child_in < 0) {
    int e = errno;
    close_all();
    return ErrnoError("exec: opening /dev/null", e);
  }
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    int e = errno;
    close_all();
    return ErrnoError("exec: pipe2", e);
  }
  const bool tty = options.tty;
  const char* cwd = context.cwd.empty() ? nullptr : context.cwd.c_str();

  pid_t pid = ::fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    // First the task's cgroup: nothing the command does from here on runs outside it.
    int e = JoinCgroupInChild(cgroup_procs_fds);
    ::setsid();  // a session and process group of its own: killed as a whole
    ResetSignalsInChild();
    if (tty) {
      // The terminal becomes the controlling terminal of the new session: job control, ^C.
      if (e == 0 && ::ioctl(child_out, TIOCSCTTY, 0) != 0) e = errno;
      ::dup2(child_out, 0);
      ::dup2(child_out, 1);
      ::dup2(child_out, 2);
    } else {
      ::dup2(child_in, 0);
      ::dup2(child_out, 1);
      ::dup2(child_err, 2);
    }
    // Nothing of the agent (listening sockets, the store, other sessions) may leak in.
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (e == 0 && enter) e = enter();
    if (e == 0 && cwd && ::chdir(cwd) != 0) e = errno;
    // Groups and gid before uid: after setuid there is no right left to change them.
    if (e == 0 && switch_user &&
        (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(context.gid) != 0 ||
         ::setuid(context.uid) != 0)) {
      e = errno;
    }
    if (e == 0) {
      ::execve(path.c_str(), argv.data(), envp.data());
      e = errno;
    }
    ssize_t w = ::write(errpipe[1], &e, sizeof(e));
    (void)w;
    _exit(127);
  }
  int fork_errno = errno;
  ::close(errpipe[1]);
  CloseFd(child_in);
  CloseFd(child_out);
  CloseFd(child_err);
  if (pid < 0) {
    ::close(errpipe[0]);
    close_all();
    return ErrnoError("exec: fork", fork_errno);
  }
  if (int child_err_no = ChildExecError(errpipe[0], pid); child_err_no != 0) {
    close_all();
    return MakeError(child_err_no == ENOENT || child_err_no == EACCES ? Code::kInvalidArgument
                                                                       : Code::kInternal,
                     "exec: cannot run " + options.command[0] +
                         (cwd ? " in " + context.cwd : std::string()) + ": " +
                         std::strerror(child_err_no));
  }
  int pidfd = PidfdOpen(pid);
  if (pidfd < 0) {
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    close_all();
    return ErrnoError("exec: pidfd_open", e);
  }
  if (tty) {
    return std::make_unique<HostExecSession>(pid, pidfd, in, out, -1, true, std::move(callbacks));
  }
  return std::make_unique<HostExecSession>(pid, pidfd, in, out, err, false, std::move(callbacks));
}

}  // namespace mentat
