// Which syscall seccomp killed a container's process for. SECCOMP_RET_KILL_PROCESS is logged by
// the kernel (kernel.seccomp.actions_logged has kill_process by default) as an audit record of
// type 1326 that carries the syscall's number; with no auditd, kauditd prints it to the kernel
// log, read here from /dev/kmsg. A container's records are told apart by its own audit session
// (hull gives PID 1 a fresh one by writing /proc/self/loginuid), else by the workload's pid.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace mentat::hull {

struct SeccompKill {
  pid_t pid = 0;  // host pid of the killed process
  std::string comm;
  uint32_t arch = 0;  // AUDIT_ARCH_*
  int syscall = -1;
  std::string name;  // libseccomp's name for it on `arch`; "" when unknown
};

// Parses one kernel log line; nullopt unless it is a seccomp kill record (type=1326, sig=31).
// Also returns the record's session id through *session (-1 when unset).
std::optional<SeccompKill> ParseSeccompRecord(const std::string& line, int64_t* session);

// The last seccomp kill in `kmsg_path` (default /dev/kmsg) of audit session `session` (when > 0)
// or of process `pid`. nullopt when none (or the log is unreadable).
std::optional<SeccompKill> FindSeccompKill(int64_t session, pid_t pid,
                                           const std::string& kmsg_path = "/dev/kmsg");

// The same, for a process known to have died of SIGSYS: its record must come, but kauditd
// prints it from a thread of its own, possibly after the death is seen. Waits up to `wait` for
// the record to reach the log.
std::optional<SeccompKill> AwaitSeccompKill(int64_t session, pid_t pid,
                                            std::chrono::milliseconds wait,
                                            const std::string& kmsg_path = "/dev/kmsg");

}  // namespace mentat::hull
