#include "runtimes/isolation/caps.h"

#include <linux/securebits.h>
#include <sys/prctl.h>

#include <fstream>

namespace mentat {

CapsPlan::~CapsPlan() {
  if (empty) cap_free(empty);
}

Result<std::unique_ptr<CapsPlan>> PlanDropAllCaps() {
  auto plan = std::make_unique<CapsPlan>();
  plan->empty = cap_init();
  if (!plan->empty) return ErrnoError("capabilities: cap_init", errno);
  if (cap_clear(plan->empty) != 0) return ErrnoError("capabilities: cap_clear", errno);
  plan->last_cap = static_cast<int>(cap_max_bits()) - 1;
  if (plan->last_cap < CAP_LAST_CAP) plan->last_cap = CAP_LAST_CAP;
  return plan;
}

int DropAllCapsInChild(const CapsPlan& plan) noexcept {
  for (int c = 0; c <= plan.last_cap; ++c) {
    // EINVAL: a capability this kernel does not have; nothing to drop.
    if (cap_drop_bound(static_cast<cap_value_t>(c)) != 0 && errno != EINVAL) return errno;
  }
  // One call (libcap's cap_reset_ambient asks about every capability first).
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  // While CAP_SETPCAP is still held: uid 0 gets nothing back from exec or setuid.
  const unsigned bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                        SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
  if (cap_set_secbits(bits) != 0) return errno;
  if (cap_set_proc(plan.empty) != 0) return errno;
  return 0;
}

Result<std::map<std::string, std::string>> ProcessCaps(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  if (!f) return NotFound("process " + std::to_string(pid) + " is gone");
  std::map<std::string, std::string> out;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("Cap", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = v;
  }
  return out;
}

}  // namespace mentat
