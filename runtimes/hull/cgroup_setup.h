// The container's cgroup, made by the parent while the child may already run: the parent makes
// the group and says so through a futex word; the child waits for it and joins it itself, so
// nothing it forks ever runs outside the group.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/hull_manifest.h"
#include "runtimes/cgroups/cgroups.h"

namespace mentat::hull {

// The container's cgroup. When the child shares our memory (the clone without a gate), a thread
// of `hull run` makes it while the kernel makes the child's namespaces: the ~0.4 ms of v1
// mkdirs and limit writes are then off the start's critical path. The child waits for `state`
// (a futex) before it joins, opening `cfiles` itself.
struct CgroupSetup {
  enum : int { kPending = 0, kReady, kNone, kFailed };
  static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free,
                "the futex word is the atomic's int");
  std::atomic<int> state{kPending};
  CgroupPtr group;
  std::string version;
  std::optional<Error> error;  // kFailed
  std::string warning;         // kNone: why the container runs without limits
  std::vector<std::string> files;
  std::vector<const char*> cfiles;

  // A rootless hull of an unprivileged user usually cannot create a group (v1 here is root's):
  // with `may_skip` the container then runs without limits, and says so.
  // Never throws: whatever happens ends in a state the child can read.
  void Make(const std::string& path, const CgroupLimits& limits, bool may_skip) noexcept;

  // Removes the group, when one was made: a start that failed leaves none behind.
  void Destroy() {
    if (group) group->Destroy();
  }
};

// In the child: waits (up to 10 s) until the parent's thread has made the group, then joins
// it: "0" (the writer) into each file. 0, or an errno (ECANCELED when no group could be made:
// the parent says why).
int JoinCgroupWhenMade(const CgroupSetup& cs) noexcept;

// The manifest's limits, in the cgroup's units.
CgroupLimits LimitsOf(const HullManifest& m);

}  // namespace mentat::hull
