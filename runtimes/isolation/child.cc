#include "runtimes/isolation/child.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace mentat {

const char* StepName(IsolationStep step) {
  switch (step) {
    case IsolationStep::kCgroup: return "joining the task's cgroup";
    case IsolationStep::kSession: return "starting a session";
    case IsolationStep::kHostname: return "setting the hostname";
    case IsolationStep::kMountPropagation: return "making mounts private";
    case IsolationStep::kOverlay: return "mounting the root filesystem";
    case IsolationStep::kPivotRoot: return "pivot_root into the sandbox root";
    case IsolationStep::kProc: return "mounting /proc";
    case IsolationStep::kDev: return "making /dev";
    case IsolationStep::kVolume: return "mounting a volume";
    case IsolationStep::kMaskPaths: return "masking /proc paths";
    case IsolationStep::kCwd: return "changing to the working directory";
    case IsolationStep::kLandlock: return "applying the Landlock ruleset";
    case IsolationStep::kCapabilities: return "dropping capabilities";
    case IsolationStep::kNoNewPrivs: return "setting no_new_privs";
    case IsolationStep::kSeccomp: return "installing the seccomp filter";
    case IsolationStep::kUser: return "switching user";
    case IsolationStep::kExec: return "executing sandbox-init";
    case IsolationStep::kNetwork: return "bringing up lo in the network namespace";
    case IsolationStep::kCgroupNamespace: return "entering a new cgroup namespace";
    case IsolationStep::kJoinNamespaces: return "joining the container's namespaces";
  }
  return "setting up the sandbox";
}

void FailChild(int fd, IsolationStep step, int error, int index) noexcept {
  ChildFailure f{static_cast<int>(step), error, index};
  ssize_t w = ::write(fd, &f, sizeof(f));
  (void)w;
  _exit(127);
}

bool ReadChildFailure(int fd, ChildFailure* failure) {
  ssize_t n;
  do {
    n = ::read(fd, failure, sizeof(*failure));
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n == static_cast<ssize_t>(sizeof(*failure));
}

int ForkIntoPidNamespace() noexcept {
  pid_t child = ::fork();
  if (child < 0) return errno;
  if (child == 0) return 0;
  syscall(SYS_close_range, 3, ~0U, 0);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    ::signal(WTERMSIG(status), SIG_DFL);
    ::kill(::getpid(), WTERMSIG(status));
    _exit(128 + WTERMSIG(status));
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

}  // namespace mentat
