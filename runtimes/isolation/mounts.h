// The sandbox's and hull's filesystem: an overlay root (the app rootfs over the base, and a
// writable layer of the allocation's own) or a plain directory bound as the root (hull, as runc), pivot_root into it (not chroot: the old root is detached
// and unreachable), a fresh /proc with the kernel's knobs read-only or masked, a minimal /dev
// (null, zero, random, urandom and a /dev/shm tmpfs), and the service's volumes as bind mounts.
// The plan is built and checked in the parent; SetupRootInChild only makes system calls.
#pragma once

#include <string>
#include <vector>

#include "apis/error.h"
#include "runtimes/isolation/child.h"

namespace mentat {

struct BindMount {
  std::string source;  // canonical host path (no symlinks), checked in the parent
  std::string target;  // absolute path inside the sandbox
  bool read_only = false;
  bool is_dir = true;
  // Built by PlanRoot: target's components, each a path to mkdir ("/data", "/data/jobs").
  std::vector<std::string> mkdirs;
};

struct RootPlan {
  // Overlay layers, top first; at least one. Host directories.
  std::vector<std::string> lower;
  std::string upper, work, merged;  // host directories, created by PlanRoot
  // The root is lower[0] itself, bound onto itself (writes land in it, as with runc), not an
  // overlay: upper and work are unused and merged is set by PlanRoot.
  bool bind_root = false;
  std::string hostname;
  std::vector<BindMount> volumes;
  // Built by PlanRoot.
  std::string overlay_options;
  // SetupRootInChild's scratch, sized by PlanRoot (the four devices, then the volumes): the
  // detached mount trees it clones before pivot_root. Written only in the child, which cannot
  // allocate (with CLONE_VM it writes the parent's memory, which never reads it).
  mutable std::vector<int> tree_fds;
};

// Checks the plan (absolute, existing, mount-option-safe paths) and creates upper, work and
// merged. Errors name the field (`rootfs`, `volumes[1].source`).
Status PlanRoot(RootPlan& plan);

// In the parent, for a bind root the child may not be able to write (a user namespace): makes
// every mount point SetupRootInChild needs, if missing: /proc, /dev, /tmp and the volumes'
// targets. Never follows a
// symlink in the rootfs (kInvalidArgument naming the path) and never changes an existing
// directory's mode: the rootfs is the workload's to write, this runs as root on the host.
Status PremakeMountPoints(RootPlan& plan);

// Why the kernel refused an overlay whose upper layer is `upper`, when it is a reason a user
// can act on, as " (...)"; "" otherwise. An upper layer on overlayfs (a data directory inside a
// container's own root filesystem) is refused with a bare EINVAL.
std::string OverlayUpperAdvice(const std::string& upper);

// In the child, in its new mount, PID and UTS namespaces: builds the root and pivots into it.
// Returns 0, or the failed step with *error (and *index for a volume). Async-signal-safe.
int SetupRootInChild(const RootPlan& plan, int* error, int* index) noexcept;

}  // namespace mentat
