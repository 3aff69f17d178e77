// An exec session into a confined task (the sandbox's, a hull container): the command joins the
// task's namespaces, then takes the same Landlock, capabilities and seccomp as its workload.
// Used by the sandbox and hull drivers as their ProcessSupervisor::ExecPrepare.
#pragma once

#include <functional>
#include <memory>

#include "runtimes/exec/supervisor.h"
#include "runtimes/isolation/caps.h"
#include "runtimes/isolation/landlock.h"
#include "runtimes/isolation/seccomp.h"

namespace mentat {

// Points `context` into the task: its root (/proc/<pid>/root), the working directory its
// handle state records ("cwd", default "/"), and this process's uid and gid (the workload's:
// confinement comes from the namespaces and restrictions, not a user).
void EnterTaskRoot(const ProcessSupervisor::ExecTarget& target, ProcessContext& context);

// What the session's child runs (async-signal-safe): setns into `ns_flags` of the process
// `pidfd` pins (as uid and gid 0 of its user namespace when CLONE_NEWUSER is among them, as
// `hull exec` does), a second fork so that the PID namespace applies, then ConfineInChild. The
// plans must outlive the session's start; `seccomp` is kept alive by the returned function.
std::function<int()> EnterConfinedTask(int pidfd, int ns_flags, const LandlockPlan* landlock,
                                       const CapsPlan* caps,
                                       std::shared_ptr<const SeccompProgram> seccomp);

}  // namespace mentat
