// The last steps of every confined child, in the order that makes each possible: Landlock (needs
// the final root), then capabilities (Landlock and seccomp need no capability), then
// no_new_privs (seccomp requires it without CAP_SYS_ADMIN), then seccomp last, so that the
// filter does not have to allow the calls of the steps before it. Shared by the sandbox driver
// and hull, at start and for exec.
#pragma once

#include "runtimes/isolation/caps.h"
#include "runtimes/isolation/landlock.h"
#include "runtimes/isolation/seccomp.h"

namespace mentat {

// In the child: returns 0, or errno with *step set to the IsolationStep that failed.
// `extra_exec_fd`: a file outside the root that must stay executable (sandbox-init), or -1.
// Async-signal-safe.
int ConfineInChild(const LandlockPlan& landlock, const CapsPlan& caps, const SeccompProgram& seccomp,
                   int extra_exec_fd, int* step) noexcept;

}  // namespace mentat
