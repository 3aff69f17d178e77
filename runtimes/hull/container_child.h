// The container's PID 1 between clone and the exec of sandbox-init: what the parent builds for
// it before clone (ChildArgs), and the child itself (ChildMain), which only makes system calls
// and reports a failing step through the error pipe (runtimes/isolation/child.h).
#pragma once

#include "runtimes/hull/cgroup_setup.h"
#include "runtimes/isolation/caps.h"
#include "runtimes/isolation/landlock.h"
#include "runtimes/isolation/mounts.h"
#include "runtimes/isolation/seccomp.h"

namespace mentat::hull {

constexpr int kStatusFd = 3;
constexpr int kExecFd = 4;  // sandbox-init closes it once the workload exec'd: hull waits on EOF

// Everything the cloned child needs, built before clone.
struct ChildArgs {
  const CgroupSetup* cgroup;
  int out_fd, err_fd, null_fd, status_fd, exec_fd, init_fd, errpipe;
  // The fork-pipe gate (rootless, bridge): the child waits on gate_rd until the parent wrote
  // its id maps and moved its veth end in; gate_wr is the parent's end, closed in the child.
  int gate_rd, gate_wr;
  bool rootless;      // become uid/gid 0 of the new user namespace once the maps are written
  bool drop_groups;   // and drop the supplementary groups first (hull is root: setgroups allowed)
  bool new_net;
  const char* loginuid;  // written to /proc/self/loginuid: a fresh audit session
  const RootPlan* root;
  const char* cwd;
  const LandlockPlan* landlock;
  const CapsPlan* caps;
  const SeccompProgram* seccomp;
  char* const* argv;           // sandbox-init's, with the two buffers below in it
  char* const* workload_argv;  // the manifest's argv
  char* const* envp;
  char* adopt_pid;      // --adopt's value, written by the child (room for 11 digits)
  char* exec_error_fd;  // --exec-error-fd's value, likewise
};

// The container's PID 1, between clone and exec: only system calls. The order matters: the
// cgroup first (nothing forked later runs outside it) and the cgroup namespace after it (its
// root is the container's group); the root before Landlock (rules name paths in the new root);
// seccomp last, inside ConfineInChild.
int ChildMain(void* p);

// `fd` moved above the descriptors ChildMain dup2()s onto (0 to kExecFd), so that none of its
// sources is overwritten by another's copy (hull may start with 0-2 closed, 3-4 free). -1 stays.
int AboveChildFds(int fd);

}  // namespace mentat::hull
