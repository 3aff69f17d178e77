// The parent's half of a gated start (--rootless, network "bridge"): PID 1 is cloned as a fork
// that blocks on a pipe, the gate, while the parent does what only a process outside it can:
// write its user namespace's id maps and move a veth end into its network namespace.
#pragma once

#include <sys/types.h>

#include <functional>

#include "apis/error.h"
#include "runtimes/isolation/bridge.h"

namespace mentat::hull {

// The ids the container's 0 maps to with --rootless. An unprivileged hull maps its own (the
// kernel allows nothing else, and then setgroups must be "deny"); hull as root maps
// SUDO_UID/SUDO_GID when set (the user behind sudo), else kRootlessId, never 0.
struct IdMapping {
  uid_t uid;
  gid_t gid;
  bool deny_setgroups;
};

IdMapping RootlessMapping();

// A child blocked at the gate, and what it waits for.
struct GatedChild {
  pid_t pid = 0;
  int gate_wr = -1;                // the parent's end: closed by PrepareGatedChild, come what may
  const IdMapping* ids = nullptr;  // rootless: the maps to write
  const VethPlan* veth = nullptr;  // bridge: the veth to attach
};

// In order: the id maps, the veth (*veth_made once it is ours), `record` (state.json and the
// lease name PID 1), then the gate opens; the StopPoints "cloned", "attached", "recorded" and
// "released" come between. On failure *step names the step that failed, and the child is still
// blocked (or already dead): the caller kills it.
Status PrepareGatedChild(const GatedChild& child, const std::function<Status()>& record, bool* veth_made,
                         const char** step);

}  // namespace mentat::hull
