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
  std::vector<std::string> denied;  // syscall names, for docs and the fingerprint
};

Result<SeccompProgram> BuildSandboxSeccomp();

// In the child, after no_new_privs: installs the program (all threads: there is one). Returns 0
// or errno. Async-signal-safe.
int InstallSeccompInChild(const SeccompProgram& program) noexcept;

}  // namespace mentat
