// Dropping every capability with libcap: the bounding set (so no later exec, setuid binary or
// file capability can bring one back), the ambient set, then the effective, permitted and
// inheritable sets; and the securebits that stop uid 0 from regaining them (NOROOT,
// NO_SETUID_FIXUP, KEEP_CAPS off, all locked).
#pragma once

#include <sys/capability.h>

#include <map>
#include <memory>
#include <string>

#include "apis/error.h"

namespace mentat {

struct CapsPlan {
  cap_t empty = nullptr;  // a cleared cap_t, made in the parent (cap_init allocates)
  int last_cap = 0;       // the highest capability this kernel knows
  CapsPlan() = default;
  CapsPlan(const CapsPlan&) = delete;
  CapsPlan& operator=(const CapsPlan&) = delete;
  ~CapsPlan();
};

Result<std::unique_ptr<CapsPlan>> PlanDropAllCaps();

// In the child, last before no_new_privs and seccomp: returns 0 or errno. Async-signal-safe
// (libcap's cap_drop_bound, cap_reset_ambient, cap_set_secbits and cap_set_proc are thin
// wrappers over prctl and capset).
int DropAllCapsInChild(const CapsPlan& plan) noexcept;

// The capability sets of `pid` from /proc, hex, for tests and inspect: {"CapInh", "CapPrm",
// "CapEff", "CapBnd", "CapAmb"}.
Result<std::map<std::string, std::string>> ProcessCaps(int pid);

}  // namespace mentat
