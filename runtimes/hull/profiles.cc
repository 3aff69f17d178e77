#include "runtimes/hull/profiles.h"

#include <algorithm>
#include <set>

#include "apis/hull_manifest.h"

namespace mentat::hull {
namespace {

using Names = std::vector<std::string>;

// What every profile needs before the workload's first instruction: sandbox-init (static musl:
// signalfd loop, fork, execvp, waitpid, status write) and the kernel's side of exec and of a
// libc's start (TLS, robust futex list, rseq).
const Names kInit = {
    "execve", "execveat", "exit", "exit_group", "read", "write", "close", "rt_sigaction", "rt_sigprocmask",
    "rt_sigreturn", "signalfd4", "pipe2", "fork", "clone", "clone3", "wait4", "kill", "prctl", "fcntl",
    "brk", "mmap", "munmap", "mprotect", "arch_prctl", "set_tid_address", "set_robust_list",
    "rseq", "getpid", "gettid", "tgkill", "futex", "restart_syscall",
};

// default: single static binaries (Rust musl, Zig, Go) and shell pipelines: I/O, files,
// sockets, processes. No io_uring (CVE history), nothing that changes the host or the
// container's shape (mount, namespaces, modules, clocks, reboot).
const Names kDefault = {
    // files and descriptors
    "open", "openat", "openat2", "creat", "readv", "writev", "pread64", "pwrite64", "preadv",
    "pwritev", "lseek", "stat", "fstat", "lstat", "newfstatat", "statx", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "dup", "dup2", "dup3",
    "ioctl", "pipe", "fsync", "fdatasync", "ftruncate", "truncate", "flock", "sendfile",
    "splice", "copy_file_range", "fadvise64", "fallocate", "statfs", "fstatfs", "getcwd",
    "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
    "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
    "chown", "fchown", "fchownat", "lchown", "umask", "utimensat", "mknodat",
    // waiting on many
    "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "eventfd2",
    // memory
    "mremap", "madvise", "mlock", "munlock", "msync", "mincore", "memfd_create",
    // processes and threads
    "fork", "vfork", "execveat", "waitid", "tkill", "getppid", "getuid", "geteuid", "getgid",
    "getegid", "getgroups", "setpgid", "getpgid", "getpgrp", "setsid", "getsid", "setuid",
    "setgid", "setgroups", "setresuid", "setresgid", "getresuid", "getresgid", "capget",
    "get_robust_list", "sched_yield", "sched_getaffinity", "sched_setaffinity", "getpriority",
    "setpriority", "getrlimit", "setrlimit", "prlimit64", "getrusage", "uname", "sysinfo",
    "times", "getrandom", "membarrier", "pkey_alloc", "pkey_free", "pkey_mprotect",
    // signals
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigpending", "rt_sigqueueinfo", "sigaltstack",
    "pause", "alarm", "setitimer", "getitimer",
    // time
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    // sockets
    "socket", "socketpair", "connect", "accept", "accept4", "bind", "listen", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown",
};

const Names kIoUring = {"io_uring_setup", "io_uring_enter", "io_uring_register"};

// node: libuv's core and V8's needs: epoll, eventfd, signalfd, timerfd, threads. No legacy
// calls (open, stat, select, ...), no file creation beyond openat.
const Names kNode = {
    "openat", "readv", "writev", "pread64", "pwrite64", "lseek", "fstat", "newfstatat", "statx",
    "readlink", "getdents64", "ioctl", "dup3", "epoll_create1", "epoll_ctl", "epoll_pwait",
    "epoll_wait", "eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime", "madvise",
    "mremap", "getcwd", "sched_getaffinity", "sched_yield", "prlimit64", "uname", "getrandom",
    "clock_gettime", "clock_nanosleep", "nanosleep", "getuid", "geteuid", "getgid", "getegid",
    "capget", "socket", "socketpair", "connect", "accept4", "bind", "listen", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "shutdown", "access", "sysinfo",
    // V8 allocates a memory protection key at start (pkey_alloc; here it succeeds) for its
    // code-space write protection.
    "pkey_alloc", "pkey_free", "pkey_mprotect",
};

// dotnet: CoreCLR's PAL: select/pselect6, signalfd, memfd_create (JIT double mapping), tgkill
// (thread suspension), plus the libc basics.
const Names kDotnet = {
    "openat", "readv", "writev", "pread64", "pwrite64", "lseek", "fstat", "newfstatat", "statx",
    "readlink", "getdents64", "ioctl", "dup2", "dup3", "select", "pselect6", "poll", "ppoll",
    "memfd_create", "ftruncate", "madvise", "mremap", "membarrier", "getcwd", "sched_getaffinity",
    "sched_yield", "prlimit64", "getrlimit", "uname", "getrandom", "clock_gettime",
    "clock_nanosleep", "nanosleep", "getuid", "geteuid", "getppid", "rt_sigtimedwait",
    "sigaltstack", "socket", "connect", "accept4", "bind", "listen", "getsockname", "setsockopt",
    "getsockopt", "sendmsg", "recvmsg", "shutdown", "access", "faccessat2", "epoll_create1",
    "epoll_ctl", "epoll_pwait", "eventfd2",
};

// beam: default plus what ERTS and erl_child_setup use (found by running erlang-base's erl under
// hull: close_range in erl_child_setup, the legacy epoll_create and timerfd in the poll threads),
// and inotify for file-watching reloaders. No SysV IPC, xattrs or mknod: ERTS has no use for them.
const Names kBeamExtras = {
    "close_range", "timerfd_create", "timerfd_settime", "timerfd_gettime", "signalfd", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "epoll_create", "epoll_pwait2", "eventfd",
    "utime", "utimes", "sync", "syncfs", "readahead", "sched_getparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
};

// java: the whole table but what no JVM has a use for; the blocked-in-all list is always out.
const Names kJavaNever = {
    "reboot", "swapon", "swapoff", "iopl", "ioperm", "acct", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "syslog", "open_by_handle_at", "perf_event_open",
    "lookup_dcookie", "quotactl", "pivot_root", "mount", "umount2", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "unshare", "setns",
    "chroot", "vhangup", "sethostname", "setdomainname", "uselib", "nfsservctl", "kcmp",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "create_module",
    "get_kernel_syms", "query_module",
};

Names Union(std::initializer_list<const Names*> parts) {
  std::set<std::string> seen;
  Names out;
  for (const Names* p : parts) {
    for (const auto& n : *p) {
      if (seen.insert(n).second) out.push_back(n);
    }
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> ProfileSyscalls(const std::string& profile) {
  if (profile == "default") return Union({&kInit, &kDefault});
  if (profile == "webapp") return Union({&kInit, &kDefault, &kIoUring});
  if (profile == "node") return Union({&kInit, &kNode});
  if (profile == "dotnet") return Union({&kInit, &kDotnet});
  if (profile == "beam") return Union({&kInit, &kDefault, &kBeamExtras});
  if (profile == "java") {
    Names all = AllSyscallNames();
    const auto& blocked = BlockedInAllProfiles();
    std::erase_if(all, [&](const std::string& n) {
      return std::find(blocked.begin(), blocked.end(), n) != blocked.end() ||
             std::find(kJavaNever.begin(), kJavaNever.end(), n) != kJavaNever.end();
    });
    return all;
  }
  std::string known;
  for (const auto& p : HullProfiles()) known += (known.empty() ? "" : ", ") + p;
  return InvalidArgument("profile: unknown seccomp profile \"" + profile + "\" (one of " + known + ")");
}

Result<SeccompProgram> CompileProfile(const std::string& profile) {
  MT_ASSIGN_OR_RETURN(auto names, ProfileSyscalls(profile));
  return BuildAllowlistSeccomp(names);
}

}  // namespace mentat::hull
