#include "runtimes/isolation/confine.h"

#include <sys/prctl.h>

#include <cerrno>

#include "runtimes/isolation/child.h"

namespace mentat {

int ConfineInChild(const LandlockPlan& landlock, const CapsPlan& caps, const SeccompProgram& seccomp,
                   int extra_exec_fd, int* step) noexcept {
  if (int e = ApplyLandlockInChild(landlock, extra_exec_fd); e != 0) {
    *step = static_cast<int>(IsolationStep::kLandlock);
    return e;
  }
  if (int e = DropAllCapsInChild(caps); e != 0) {
    *step = static_cast<int>(IsolationStep::kCapabilities);
    return e;
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    *step = static_cast<int>(IsolationStep::kNoNewPrivs);
    return errno;
  }
  if (int e = InstallSeccompInChild(seccomp); e != 0) {
    *step = static_cast<int>(IsolationStep::kSeccomp);
    return e;
  }
  return 0;
}

}  // namespace mentat
