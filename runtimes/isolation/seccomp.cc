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

}  // namespace

Result<SeccompProgram> BuildSandboxSeccomp() {
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
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

  // Export the BPF through a memfd: the child installs it with prctl, no library calls.
  int fd = static_cast<int>(syscall(SYS_memfd_create, "seccomp-bpf", MFD_CLOEXEC));
  if (fd < 0) return ErrnoError("seccomp: memfd_create", errno);
  if (int rc = seccomp_export_bpf(ctx.get(), fd); rc < 0) {
    ::close(fd);
    return ErrnoError("seccomp: exporting the filter", -rc);
  }
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    ::close(fd);
    return Internal("seccomp: the exported filter has an odd size");
  }
  program.code.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  ssize_t n = ::pread(fd, program.code.data(), static_cast<size_t>(size), 0);
  ::close(fd);
  if (n != size) return Internal("seccomp: reading the exported filter");
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
