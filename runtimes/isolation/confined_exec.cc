#include "runtimes/isolation/confined_exec.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "runtimes/isolation/child.h"
#include "runtimes/isolation/confine.h"

namespace mentat {

void EnterTaskRoot(const ProcessSupervisor::ExecTarget& target, ProcessContext& context) {
  context.cwd = target.state->value("cwd", "/");
  context.root = "/proc/" + std::to_string(target.pid) + "/root";
  context.uid = ::geteuid();  // the workload's uid; confinement comes from the steps below
  context.gid = ::getegid();
}

std::function<int()> EnterConfinedTask(int pidfd, int ns_flags, const LandlockPlan* landlock,
                                       const CapsPlan* caps,
                                       std::shared_ptr<const SeccompProgram> seccomp) {
  // In the session's child: into the task's namespaces (joining the mount namespace enters its
  // root); the PID namespace takes effect for children only, so fork once more and relay the
  // command's exit, as nsenter and `hull exec` do.
  return [pidfd, ns_flags, landlock, caps, seccomp]() noexcept -> int {
    if (::setns(pidfd, ns_flags) != 0) return errno;
    if (ns_flags & CLONE_NEWUSER) {
      // A rootless container (a `binary:` hull run --rootless): become its uid/gid 0, the
      // mapped host id, as `hull exec` does; the agent's own root is unmapped there. Groups go
      // where the namespace allows setgroups. Raw system calls: no glibc setxid broadcast in a
      // child forked from the threaded agent.
      if (syscall(SYS_setgroups, 0, nullptr) != 0 && errno != EPERM) return errno;
      if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0) return errno;
    }
    if (int err = ForkIntoPidNamespace()) return err;
    int step = 0;
    return ConfineInChild(*landlock, *caps, *seccomp, -1, &step);
  };
}

}  // namespace mentat
