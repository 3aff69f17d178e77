// How a sandbox child reports which isolation step failed. Between clone and exec the child may
// only make async-signal-safe calls (the agent is multi-threaded), so every block below is split
// in two: a plan built in the parent, with all allocation and parsing done, and a function the
// child calls that only issues system calls. A failing child writes a ChildFailure to a
// close-on-exec pipe; the parent turns it into an error naming the step.
#pragma once

#include <cerrno>
#include <string>

namespace mentat {

enum class IsolationStep : int {
  kCgroup = 1,
  kSession,
  kHostname,
  kMountPropagation,
  kOverlay,
  kPivotRoot,
  kProc,
  kDev,
  kVolume,
  kMaskPaths,
  kCwd,
  kLandlock,
  kCapabilities,
  kNoNewPrivs,
  kSeccomp,
  kUser,
  kExec,
  kNetwork,          // hull: bringing up lo in the new network namespace
  kCgroupNamespace,  // hull: unshare(CLONE_NEWCGROUP) once inside the container's cgroup
  kJoinNamespaces,   // hull exec: setns into a running container's namespaces
};

struct ChildFailure {
  int step = 0;   // an IsolationStep
  int error = 0;  // errno
  int index = 0;  // which volume, for kVolume
};

// "mounting the overlay root", for messages.
const char* StepName(IsolationStep step);

// In the child: reports the failure on `fd` and exits 127. Async-signal-safe.
[[noreturn]] void FailChild(int fd, IsolationStep step, int error, int index = 0) noexcept;

// In the parent, after the child exec'd or died: reads a ChildFailure from the read end (closes
// it). True when one arrived.
bool ReadChildFailure(int fd, ChildFailure* failure);

// After setns into a PID namespace, which applies to children only: forks once more, as nsenter
// does. Returns 0 in the new child (which goes on into the namespace), errno when the fork
// fails; the calling process closes its fds past stderr, waits, and exits as the child did (the
// same signal, or its exit code). Async-signal-safe.
int ForkIntoPidNamespace() noexcept;

}  // namespace mentat
