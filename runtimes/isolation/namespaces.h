// Linux namespaces of a running process, as the drivers join and report them: which of a
// task's namespaces differ from the agent's own (what `exec` into it must setns), and every
// namespace's inode (what `inspect` shows).
#pragma once

#include <sys/types.h>

#include "apis/object.h"

namespace mentat {

// The CLONE_NEW* flags of the namespaces of `pid` that are not the caller's (mnt, uts, ipc,
// net, pid, cgroup, user): a setns(pidfd, flags) joins exactly those. 0 when pid is gone.
int NamespacesToJoin(pid_t pid);

// {"<kind>": {"inode": N, "own": bool}} for every namespace of `pid` (own: not the caller's),
// and through *own_count how many are its own (the *_for_children links are not counted).
Json NamespaceInodes(pid_t pid, int* own_count);

}  // namespace mentat
