// A Landlock ruleset for the sandbox, best effort by ABI version (none on kernels before 5.13;
// each newer ABI adds rights: REFER in 2, TRUNCATE in 3, IOCTL_DEV in 5). Inside the sandbox
// root (after pivot_root): everything may be read and executed; everything may be written
// except /proc, /sys and /dev, where only /dev/null, zero, random, urandom and /dev/shm are
// writable; the task's stdout and stderr files stay writable by path (/dev/stdout).
#pragma once

#include <cstdint>

#include "apis/error.h"
#include "apis/object.h"

namespace mentat {

struct LandlockPlan {
  int abi = 0;               // 0: Landlock is not available; nothing is applied
  uint64_t handled = 0;      // every filesystem right this ABI knows
  uint64_t file_rights = 0;  // the subset that applies to a file (not a directory)
};

LandlockPlan PlanLandlock();

// In the child, inside the new root: returns 0 or errno. Async-signal-safe. `exec_fd` (or -1):
// a file outside the root that stays executable (the sandbox's init, exec'd through its fd).
int ApplyLandlockInChild(const LandlockPlan& plan, int exec_fd = -1) noexcept;

// {"abi": N, "enforced": bool}: for the driver's fingerprint.
Json DescribeLandlock(const LandlockPlan& plan);

}  // namespace mentat
