#include "runtimes/hull/container_child.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtimes/isolation/child.h"
#include "runtimes/isolation/confine.h"
#include "runtimes/isolation/network.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace mentat::hull {
namespace {

// "N" into `out` (room for 12 bytes). Async-signal-safe.
void FormatInt(char* out, int n) {
  char digits[12];
  int k = 0;
  unsigned v = static_cast<unsigned>(n);
  do {
    digits[k++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  int at = 0;
  while (k > 0) out[at++] = digits[--k];
  out[at] = '\0';
}

// The workload's process: forked by PID 1 (CLONE_VM|CLONE_VFORK: PID 1 waits for its exec),
// confined as PID 1 is. It gives up fds 3 and 4 (sandbox-init's), restores a clean signal state
// and execs; a failure's errno goes to the pipe PID 1 hands to sandbox-init.
struct WorkloadArgs {
  char* const* argv;  // argv[0] is absolute (the manifest requires it): no PATH search
  char* const* envp;
  int error_fd;
};

int WorkloadMain(void* p) {
  const WorkloadArgs& w = *static_cast<WorkloadArgs*>(p);
  ::close(kStatusFd);
  ::close(kExecFd);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < _NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // EINVAL for reserved: fine
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(w.argv[0], w.argv, w.envp);
  int err = errno;
  ssize_t n = ::write(w.error_fd, &err, sizeof(err));
  (void)n;
  _exit(err == EACCES ? 126 : 127);
}

}  // namespace

int ChildMain(void* p) {
  const ChildArgs& a = *static_cast<ChildArgs*>(p);
  if (int e = JoinCgroupWhenMade(*a.cgroup); e != 0) FailChild(a.errpipe, IsolationStep::kCgroup, e);
  if (a.gate_rd >= 0) {
    ::close(a.gate_wr);
    char go = 0;
    ssize_t n;
    do {
      n = ::read(a.gate_rd, &go, 1);
    } while (n < 0 && errno == EINTR);
    // No byte: the parent gave up (it reports why); just leave.
    if (n != 1) _exit(127);
    ::close(a.gate_rd);
  }
  if (a.rootless) {
    // Until now this process had the host's ids, unmapped here; 0 of the new namespace is the
    // unprivileged host id the parent mapped it to. Groups first, while the caps allow it.
    // Raw system calls: glibc's wrappers broadcast the change to every thread of the process
    // (setxid), which can deadlock in a child made by clone() from a process that had threads.
    if (a.drop_groups && syscall(SYS_setgroups, 0, nullptr) != 0) FailChild(a.errpipe, IsolationStep::kUser, errno);
    if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0) {
      FailChild(a.errpipe, IsolationStep::kUser, errno);
    }
  }
  if (::unshare(CLONE_NEWCGROUP) != 0) FailChild(a.errpipe, IsolationStep::kCgroupNamespace, errno);
  // Best effort: refused when this process already has a login uid and the kernel keeps it
  // immutable; then seccomp kills are matched by pid instead.
  if (int fd = ::open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC); fd >= 0) {
    ssize_t w = ::write(fd, a.loginuid, std::strlen(a.loginuid));
    (void)w;
    ::close(fd);
  }
  if (::setsid() < 0) FailChild(a.errpipe, IsolationStep::kSession, errno);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Every source is above kExecFd (AboveChildFds): no dup2 overwrites another's source.
  if (::dup2(a.null_fd, 0) < 0 || ::dup2(a.out_fd, 1) < 0 || ::dup2(a.err_fd, 2) < 0 ||
      ::dup2(a.status_fd, kStatusFd) < 0 || ::dup2(a.exec_fd, kExecFd) < 0) {
    FailChild(a.errpipe, IsolationStep::kSession, errno);
  }
  if (a.new_net) {
    if (int e = BringUpLoopbackInChild(); e != 0) FailChild(a.errpipe, IsolationStep::kNetwork, e);
  }
  int error = 0, index = 0;
  if (int step = SetupRootInChild(*a.root, &error, &index); step != 0) {
    FailChild(a.errpipe, static_cast<IsolationStep>(step), error, index);
  }
  if (::chdir(a.cwd) != 0) FailChild(a.errpipe, IsolationStep::kCwd, errno);
  // Nothing of hull's past fd 4 reaches the container (before seccomp: close_range is not in
  // every profile).
  syscall(SYS_close_range, kExecFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
  // Until sandbox-init's exec replaces it, PID 1 is hull's code, with (CLONE_VM) hull's live
  // memory, and the workload runs beside it for a moment: not dumpable, so that neither
  // /proc/1/mem, environ nor exe opens for the workload (ptrace access needs a capability it
  // lacks). The exec of sandbox-init makes PID 1 dumpable again; hull restores its own flag.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  int exec_error[2];
  if (::pipe2(exec_error, O_CLOEXEC) != 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  int step = 0;
  if (int e = ConfineInChild(*a.landlock, *a.caps, *a.seccomp, a.init_fd, &step); e != 0) {
    FailChild(a.errpipe, static_cast<IsolationStep>(step), e);
  }
  // The workload is forked here, confined, and sandbox-init exec'd after it adopts it (--adopt):
  // the workload starts without waiting for sandbox-init's exec and start. Every signal stays
  // blocked until sandbox-init reads them: one that comes meanwhile (SIGCHLD of a workload that
  // is already done, a `hull stop`) waits in the queue, across the exec.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  alignas(16) char workload_stack[32 << 10];
  WorkloadArgs w{a.workload_argv, a.envp, exec_error[1]};
  pid_t workload = ::clone(WorkloadMain, workload_stack + sizeof(workload_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &w);
  if (workload < 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  ::close(exec_error[1]);
  if (::fcntl(exec_error[0], F_SETFD, 0) != 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  FormatInt(a.adopt_pid, workload);
  FormatInt(a.exec_error_fd, exec_error[0]);
  syscall(SYS_execveat, a.init_fd, "", a.argv, a.envp, AT_EMPTY_PATH);
  FailChild(a.errpipe, IsolationStep::kExec, errno);
}

int AboveChildFds(int fd) {
  if (fd < 0 || fd > kExecFd) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, kExecFd + 1);
  int e = errno;
  ::close(fd);
  errno = e;
  return moved;
}

}  // namespace mentat::hull
