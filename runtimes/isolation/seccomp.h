// Seccomp filters, built with libseccomp in the parent and installed by the child with one system
// call. Two shapes: the sandbox's deny list, and hull's per-profile allowlists.
//
// The sandbox's seccomp filter, built with libseccomp in the parent and installed by the child
// with one system call. Default allow, and a deny list that returns EPERM: every syscall seed
// 003 blocks in all of hull's profiles (ptrace, process_vm_readv/writev, bpf, add_key, keyctl,
// request_key, userfaultfd, kexec_load, kexec_file_load, init/finit/delete_module), plus what a
// process without capabilities has no business calling and what has widened the kernel's attack
// surface before: mount and the new mount API, pivot_root, unshare, setns, clone with namespace
// flags, io_uring, perf_event_open, open_by_handle_at, swapon, reboot, clock setting, iopl,
// TIOCSTI. clone3 answers ENOSYS (its flags are out of the filter's reach; libc falls back to
// clone). A syscall of another ABI (i386 int 0x80, x32) kills the process.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

struct SeccompProgram {
  std::vector<sock_filter> code;
  std::vector<std::string> denied;   // syscall names, for docs and the fingerprint
};

Result<SeccompProgram> BuildSandboxSeccomp();

// Seed 003's "blocked in all profiles": ptrace, process_vm_readv/writev, bpf, add_key, keyctl,
// request_key, userfaultfd, kexec_load, kexec_file_load, init/finit/delete_module.
const std::vector<std::string>& BlockedInAllProfiles();

// An allowlist (hull's profiles): every syscall not in `allowed` kills the whole process
// (SECCOMP_RET_KILL_PROCESS, which the kernel logs as an audit record of type 1326 with the
// syscall's number). Names this architecture does not have are skipped. clone is allowed
// without namespace flags only, clone3 answers ENOSYS (libc falls back to clone), ioctl
// TIOCSTI answers EPERM; a foreign ABI kills. A name from BlockedInAllProfiles() is an error.
Result<SeccompProgram> BuildAllowlistSeccomp(const std::vector<std::string>& allowed);

// libseccomp's name of syscall `nr` on this architecture; "" when unknown.
std::string SyscallName(int nr);
// Every syscall name libseccomp knows on this architecture (for permissive profiles).
std::vector<std::string> AllSyscallNames();

// In the child, after no_new_privs: installs the program (all threads: there is one). Returns 0
// or errno. Async-signal-safe.
int InstallSeccompInChild(const SeccompProgram& program) noexcept;

}  // namespace mentat
