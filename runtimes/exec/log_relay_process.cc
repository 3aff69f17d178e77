#include "runtimes/exec/log_relay_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "runtimes/exec/supervisor.h"
#include "runtimes/helper_binary.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace mentat {
namespace {

// The relay's side of the fork: async-signal-safe calls only (the agent has threads). Moves the
// pipes' read ends to 3 and 4 and the report pipe to 5 (through high numbers: any may be 3, 4
// or 5 already), then execs.
[[noreturn]] void ExecRelay(int out_rd, int err_rd, int report_fd, const char* path, char** argv,
                            char** envp) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int out_hi = ::fcntl(out_rd, F_DUPFD, 100), err_hi = ::fcntl(err_rd, F_DUPFD, 100);
  int report_hi = ::fcntl(report_fd, F_DUPFD, 100);
  int err = 0;
  if (out_hi < 0 || err_hi < 0 || report_hi < 0 || ::dup2(out_hi, 3) < 0 || ::dup2(err_hi, 4) < 0 ||
      ::dup2(report_hi, 5) < 0) {
    err = errno;
  } else {
    // Only 3, 4 and 5 stay open across the exec (dup2 cleared their close-on-exec).
    syscall(SYS_close_range, 6, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(path, argv, envp);
    err = errno;
  }
  ssize_t w = ::write(report_fd, &err, sizeof(err));
  (void)w;
  _exit(127);
}

int PidfdOpen(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

std::string FindLogRelay() { return FindHelperBinary("log-relay", "MENTAT_LOG_RELAY"); }

Result<LogRelay> StartLogRelay(const std::string& relay_path, const std::string& task_dir,
                               const LogLimits& limits) {
  std::vector<std::string> argv_s = {relay_path, task_dir, std::to_string(limits.max_file_bytes),
                                     std::to_string(limits.max_files)};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string path_env = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {path_env.data(), nullptr};
  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {out[0], out[1], err[0], err[1], report[0], report[1]}) {
      if (fd >= 0) ::close(fd);
    }
  };
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0) {
    int e = errno;
    close_all();
    return ErrnoError("log relay: pipe2", e);
  }
  pid_t middle = ::fork();
  if (middle == 0) {
    ::setsid();
    pid_t relay = ::fork();
    if (relay == 0) ExecRelay(out[0], err[0], report[1], argv[0], argv.data(), envp);
    // The relay's pid first; then the relay writes an errno if its exec fails, or closes its
    // end once it reads the pipes (cmd/log-relay's fd 5).
    ssize_t w = ::write(report[1], &relay, sizeof(relay));
    (void)w;
    _exit(relay < 0 ? 1 : 0);
  }
  int fork_errno = errno;
  ::close(report[1]);
  report[1] = -1;
  if (middle < 0) {
    close_all();
    return ErrnoError("log relay: fork", fork_errno);
  }
  while (::waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
  }
  // Returns once the relay is ready: output written from now on is read as it comes, not found
  // in both pipes at once (which would lose the order between them).
  pid_t relay = 0;
  int exec_errno = 0;
  ssize_t got = ::read(report[0], &relay, sizeof(relay));
  ssize_t failed = got == sizeof(relay) ? ::read(report[0], &exec_errno, sizeof(exec_errno)) : 0;
  ::close(out[0]);
  ::close(err[0]);
  ::close(report[0]);
  if (got != sizeof(relay) || relay <= 0) {
    ::close(out[1]);
    ::close(err[1]);
    return Internal("log relay: could not fork it");
  }
  if (failed == sizeof(exec_errno)) {
    ::close(out[1]);
    ::close(err[1]);
    return ErrnoError("log relay: running " + relay_path, exec_errno);
  }
  LogRelay r;
  r.pid = relay;
  r.start_ticks = ProcessStartTicks(relay).value_or(0);
  r.out_fd = out[1];
  r.err_fd = err[1];
  return r;
}

void RecordLogRelay(const LogRelay& relay, Json& state) {
  state["logRelayPid"] = relay.pid;
  state["logRelayStartTicks"] = relay.start_ticks;
}

bool HasLogRelay(const Json& state) {
  return state.is_object() && state.value("logRelayPid", 0) > 0;
}

namespace {

// A pidfd of the relay recorded in `state`, or -1 when it is gone or its pid names another
// process now. The pidfd first, then the identity check: after that the pid cannot be recycled.
int OpenRelay(const Json& state) {
  if (!HasLogRelay(state)) return -1;
  const int pid = state.value("logRelayPid", 0);
  int pidfd = PidfdOpen(pid);
  if (pidfd < 0) return -1;
  if (ProcessStartTicks(pid) != std::optional<uint64_t>(state.value("logRelayStartTicks", uint64_t{0}))) {
    ::close(pidfd);
    return -1;
  }
  return pidfd;
}

bool Exited(int pidfd, std::chrono::milliseconds timeout) {
  pollfd p{pidfd, POLLIN, 0};
  int n;
  while ((n = ::poll(&p, 1, static_cast<int>(timeout.count()))) < 0 && errno == EINTR) {
  }
  return n != 0;
}

}  // namespace

bool AwaitLogRelay(const Json& state, std::chrono::milliseconds timeout) {
  int pidfd = OpenRelay(state);
  if (pidfd < 0) return true;
  bool gone = Exited(pidfd, timeout);
  ::close(pidfd);
  return gone;
}

void StopLogRelay(const Json& state, std::chrono::milliseconds grace) {
  int pidfd = OpenRelay(state);
  if (pidfd < 0) return;
  if (!Exited(pidfd, grace)) {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    Exited(pidfd, std::chrono::seconds(1));
  }
  ::close(pidfd);
}

}  // namespace mentat
