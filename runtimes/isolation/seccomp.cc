#include "runtimes/isolation/seccomp.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace mentat {
namespace {

constexpr const char* kDenied[] = {
    // seed 003: blocked in every hull profile
    "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "add_key", "keyctl", "request_key",
    "userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    // mounts and namespaces: the sandbox's shape is fixed once it runs
    "mount", "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr", "chroot",
    // host-wide state and raw hardware
    "swapon", "swapoff", "reboot", "acct", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "iopl", "ioperm", "quotactl", "syslog", "vhangup", "sethostname", "setdomainname",
    "lookup_dcookie", "nfsservctl", "uselib",
    // bypasses of path-based checks, kernel introspection, recent CVE magnets
    "open_by_handle_at", "name_to_handle_at", "perf_event_open", "kcmp", "io_uring_setup",
    "io_uring_enter", "io_uring_register",
};

// Exports the BPF through a memfd: the child installs it with one system call, no library calls.
Result<std::vector<sock_filter>> ExportBpf(scmp_filter_ctx ctx) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "seccomp-bpf", MFD_CLOEXEC));
  if (fd < 0) return ErrnoError("seccomp: memfd_create", errno);
  if (int rc = seccomp_export_bpf(ctx, fd); rc < 0) {
    ::close(fd);
    return ErrnoError("seccomp: exporting the filter", -rc);
  }
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    ::close(fd);
    return Internal("seccomp: the exported filter has an odd size");
  }
  std::vector<sock_filter> code(static_cast<size_t>(size) / sizeof(sock_filter));
  ssize_t n = ::pread(fd, code.data(), static_cast<size_t>(size), 0);
  ::close(fd);
  if (n != size) return Internal("seccomp: reading the exported filter");
  return code;
}

using FilterPtr = std::unique_ptr<void, void (*)(scmp_filter_ctx)>;

// Namespace flags of clone: any of them set means a new namespace (0x80 is CLONE_NEWTIME).
constexpr scmp_datum_t kCloneNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                              CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP | 0x80;

}  // namespace

const std::vector<std::string>& BlockedInAllProfiles() {
  static const std::vector<std::string> kBlocked = {
      "ptrace",    "process_vm_readv", "process_vm_writev", "bpf",           "add_key",
      "keyctl",    "request_key",      "userfaultfd",       "kexec_load",    "kexec_file_load",
      "init_module", "finit_module",   "delete_module"};
  return kBlocked;
}

Result<SeccompProgram> BuildAllowlistSeccomp(const std::vector<std::string>& allowed) {
  FilterPtr ctx(seccomp_init(SCMP_ACT_KILL_PROCESS), seccomp_release);
  if (!ctx) return Internal("seccomp: seccomp_init failed");
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0) {
    return ErrnoError("seccomp: setting the bad-arch action", -rc);
  }
  // A binary tree of syscall numbers instead of one long chain of compares: an allowlist of a
  // few hundred calls is decided in ~9 jumps instead of up to ~300, and the kernel's action
  // cache, which runs the filter once per syscall number when it is installed, builds faster.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0) {
    return ErrnoError("seccomp: choosing the binary-tree layout", -rc);
  }
  const auto& blocked = BlockedInAllProfiles();
  SeccompProgram program;
  for (const auto& name : allowed) {
    if (std::find(blocked.begin(), blocked.end(), name) != blocked.end()) {
      return InvalidArgument("seccomp: " + name + " is blocked in every profile and cannot be allowed");
    }
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR || nr < 0) continue;  // not a syscall of this architecture
    int rc;
    if (name == "clone") {
      // Threads and processes, never new namespaces: the container's shape is fixed.
      rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 1,
                            SCMP_A0(SCMP_CMP_MASKED_EQ, kCloneNamespaceFlags, 0));
    } else if (name == "clone3") {
      // Its flags live in memory the filter cannot read: ENOSYS, and libc falls back to clone.
      rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    } else if (name == "ioctl") {
      // TIOCSTI pushes input into a terminal another process reads.
      rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 1,
                            SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
      // Everything else is allowed by "not equal": a catch-all allow would take precedence over
      // the argument rule (verified). With both, a TIOCSTI with junk in the upper 32 bits, which
      // the tty layer ignores, still matches the masked compare and is refused.
      if (rc == 0) rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 1, SCMP_A1(SCMP_CMP_NE, TIOCSTI));
    } else {
      rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0);
    }
    if (rc < 0) return ErrnoError("seccomp: allowing " + name, -rc);
  }
  program.denied = blocked;
  MT_ASSIGN_OR_RETURN(program.code, ExportBpf(ctx.get()));
  return program;
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (!name) return "";
  std::string out = name;
  std::free(name);
  return out;
}

std::vector<std::string> AllSyscallNames() {
  std::vector<std::string> out;
  for (int nr = 0; nr < 1024; ++nr) {
    std::string n = SyscallName(nr);
    if (!n.empty()) out.push_back(n);
  }
  return out;
}

Result<SeccompProgram> BuildSandboxSeccomp() {
  FilterPtr ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) return Internal("seccomp: seccomp_init failed");
  // Syscalls of a foreign ABI never reach the rules: kill.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0) {
    return ErrnoError("seccomp: setting the bad-arch action", -rc);
  }
  SeccompProgram program;
  for (const char* name : kDenied) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp: nothing to deny
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0); rc < 0) {
      return ErrnoError(std::string("seccomp: denying ") + name, -rc);
    }
    program.denied.push_back(name);
  }
  // clone with any namespace flag, one rule per bit (a masked compare tests all bits at once).
  for (scmp_datum_t bit : {scmp_datum_t{CLONE_NEWNS}, scmp_datum_t{CLONE_NEWUTS}, scmp_datum_t{CLONE_NEWIPC},
                           scmp_datum_t{CLONE_NEWUSER}, scmp_datum_t{CLONE_NEWPID}, scmp_datum_t{CLONE_NEWNET},
                           scmp_datum_t{CLONE_NEWCGROUP}, scmp_datum_t{0x80}}) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
        rc < 0) {
      return ErrnoError("seccomp: clone rule", -rc);
    }
  }
  program.denied.push_back("clone with namespace flags");
  if (int nr = seccomp_syscall_resolve_name("clone3"); nr != __NR_SCMP_ERROR) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc < 0) {
      return ErrnoError("seccomp: clone3 rule", -rc);
    }
    program.denied.push_back("clone3 (ENOSYS)");
  }
  // TIOCSTI pushes input into a terminal another process reads.
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
      rc < 0) {
    return ErrnoError("seccomp: ioctl rule", -rc);
  }
  program.denied.push_back("ioctl TIOCSTI");

  MT_ASSIGN_OR_RETURN(program.code, ExportBpf(ctx.get()));
  return program;
}

int InstallSeccompInChild(const SeccompProgram& program) noexcept {
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.code.size());
  prog.filter = const_cast<sock_filter*>(program.code.data());
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return errno;
  return 0;
}

}  // namespace mentat
