#include "runtimes/hull/container.h"

#include "runtimes/isolation/namespaces.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <climits>
#include <atomic>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <thread>

#include "runtimes/cgroups/cgroups.h"
#include "runtimes/hull/leases.h"
#include "runtimes/hull/compiled_profiles.h"
#include "runtimes/hull/profiles.h"
#include "runtimes/hull/rootfs_archive.h"
#include "runtimes/hull/stop_point.h"
#include "runtimes/isolation/bridge.h"
#include "runtimes/isolation/caps.h"
#include "runtimes/isolation/child.h"
#include "runtimes/isolation/confine.h"
#include "runtimes/isolation/init_binary.h"
#include "runtimes/isolation/landlock.h"
#include "runtimes/isolation/mounts.h"
#include "runtimes/isolation/network.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace mentat::hull {
namespace fs = std::filesystem;
namespace {

constexpr int kStatusFd = 3;
constexpr int kExecFd = 4;  // sandbox-init closes it once the workload exec'd: hull waits on EOF
constexpr size_t kChildStack = 256 << 10;
constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::unexpected<Failure> Fail(int code, Error e) { return std::unexpected(Failure{code, std::move(e)}); }
std::unexpected<Failure> Runtime(const std::string& m) { return Fail(kExitRuntime, Error(Code::kInternal, m)); }
std::unexpected<Failure> ManifestError(const std::string& field, const std::string& m) {
  return Fail(kExitManifest, Error(Code::kInvalidArgument, "hull manifest is invalid",
                                   {FieldError(field, 0, 0, m)}));
}

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
  void Make(const std::string& path, const CgroupLimits& limits, bool may_skip) noexcept {
    int result = kReady;
    try {
      auto host = CgroupHost::Probe();
      if (auto g = host->Create(path, limits); g) {
        group = std::move(*g);
        version = host->Version();
        files = group->JoinFiles();
        for (const auto& f : files) cfiles.push_back(f.c_str());
      } else if (may_skip) {
        warning = "cgroup limits skipped: " + g.error().message();
        result = kNone;
      } else {
        error = g.error();
        result = kFailed;
      }
    } catch (const std::exception& e) {
      if (group) group->Destroy();
      group.reset();
      error = Error(Code::kInternal, std::string("making the cgroup: ") + e.what());
      result = kFailed;
    }
    state.store(result, std::memory_order_release);
    syscall(SYS_futex, reinterpret_cast<int*>(&state), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  }
};

// In the child: waits (up to 10 s) until the parent's thread has made the group, then joins
// it: "0" (the writer) into each file. 0, or an errno (ECANCELED when no group could be made:
// the parent says why).
int JoinCgroupWhenMade(const CgroupSetup& cs) noexcept {
  timespec deadline;
  ::clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += 10;
  for (;;) {
    int st = cs.state.load(std::memory_order_acquire);
    if (st == CgroupSetup::kNone) return 0;
    if (st == CgroupSetup::kFailed) return ECANCELED;
    if (st == CgroupSetup::kReady) break;
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
      return ETIMEDOUT;
    }
    timespec tick{0, 100'000'000};
    syscall(SYS_futex, const_cast<int*>(reinterpret_cast<const int*>(&cs.state)), FUTEX_WAIT_PRIVATE,
            CgroupSetup::kPending, &tick, nullptr, 0);
  }
  for (const char* f : cs.cfiles) {
    int fd = ::open(f, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n;
    do {
      n = ::write(fd, "0", 1);
    } while (n < 0 && errno == EINTR);
    int e = errno;
    ::close(fd);
    if (n < 0) return e;
  }
  return 0;
}

// Everything the cloned child needs, built before clone.
struct ChildArgs {
  const CgroupSetup* cgroup;
  int out_fd, err_fd, null_fd, status_fd, exec_fd, init_fd, errpipe;
  // The fork-pipe gate (rootless, bridge): the child waits on gate_rd until the parent wrote
  // its id maps and moved its veth end in; gate_wr is the parent's end, closed in the child.
  int gate_rd, gate_wr;
  bool rootless;      // become uid/gid 0 of the new user namespace once the maps are written
  bool drop_groups;   // and drop the supplementary groups first (hull is root: setgroups allowed)
  bool new_net;
  const char* loginuid;  // written to /proc/self/loginuid: a fresh audit session
  const RootPlan* root;
  const char* cwd;
  const LandlockPlan* landlock;
  const CapsPlan* caps;
  const SeccompProgram* seccomp;
  char* const* argv;           // sandbox-init's, with the two buffers below in it
  char* const* workload_argv;  // the manifest's argv
  char* const* envp;
  char* adopt_pid;      // --adopt's value, written by the child (room for 11 digits)
  char* exec_error_fd;  // --exec-error-fd's value, likewise
};

// "N" into `out` (room for 12 bytes). Async-signal-safe.
void FormatInt(char* out, int n) {
  char digits[12];
  int k = 0;
  unsigned v = static_cast<unsigned>(n);
  do {
    digits[k++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  int at = 0;
  while (k > 0) out[at++] = digits[--k];
  out[at] = '\0';
}

// The workload's process: forked by PID 1 (CLONE_VM|CLONE_VFORK: PID 1 waits for its exec),
// confined as PID 1 is. It gives up fds 3 and 4 (sandbox-init's), restores a clean signal state
// and execs; a failure's errno goes to the pipe PID 1 hands to sandbox-init.
struct WorkloadArgs {
  char* const* argv;  // argv[0] is absolute (the manifest requires it): no PATH search
  char* const* envp;
  int error_fd;
};

int WorkloadMain(void* p) {
  const WorkloadArgs& w = *static_cast<WorkloadArgs*>(p);
  ::close(kStatusFd);
  ::close(kExecFd);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < _NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // EINVAL for reserved: fine
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(w.argv[0], w.argv, w.envp);
  int err = errno;
  ssize_t n = ::write(w.error_fd, &err, sizeof(err));
  (void)n;
  _exit(err == EACCES ? 126 : 127);
}

// The container's PID 1, between clone and exec: only system calls. The order matters: the
// cgroup first (nothing forked later runs outside it) and the cgroup namespace after it (its
// root is the container's group); the root before Landlock (rules name paths in the new root);
// seccomp last, inside ConfineInChild.
int ChildMain(void* p) {
  const ChildArgs& a = *static_cast<ChildArgs*>(p);
  if (int e = JoinCgroupWhenMade(*a.cgroup); e != 0) FailChild(a.errpipe, IsolationStep::kCgroup, e);
  if (a.gate_rd >= 0) {
    ::close(a.gate_wr);
    char go = 0;
    ssize_t n;
    do {
      n = ::read(a.gate_rd, &go, 1);
    } while (n < 0 && errno == EINTR);
    // No byte: the parent gave up (it reports why); just leave.
    if (n != 1) _exit(127);
    ::close(a.gate_rd);
  }
  if (a.rootless) {
    // Until now this process had the host's ids, unmapped here; 0 of the new namespace is the
    // unprivileged host id the parent mapped it to. Groups first, while the caps allow it.
    // Raw system calls: glibc's wrappers broadcast the change to every thread of the process
    // (setxid), which can deadlock in a child made by clone() from a process that had threads.
    if (a.drop_groups && syscall(SYS_setgroups, 0, nullptr) != 0) FailChild(a.errpipe, IsolationStep::kUser, errno);
    if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0) {
      FailChild(a.errpipe, IsolationStep::kUser, errno);
    }
  }
  if (::unshare(CLONE_NEWCGROUP) != 0) FailChild(a.errpipe, IsolationStep::kCgroupNamespace, errno);
  // Best effort: refused when this process already has a login uid and the kernel keeps it
  // immutable; then seccomp kills are matched by pid instead.
  if (int fd = ::open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC); fd >= 0) {
    ssize_t w = ::write(fd, a.loginuid, std::strlen(a.loginuid));
    (void)w;
    ::close(fd);
  }
  if (::setsid() < 0) FailChild(a.errpipe, IsolationStep::kSession, errno);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Every source is above kExecFd (AboveChildFds): no dup2 overwrites another's source.
  if (::dup2(a.null_fd, 0) < 0 || ::dup2(a.out_fd, 1) < 0 || ::dup2(a.err_fd, 2) < 0 ||
      ::dup2(a.status_fd, kStatusFd) < 0 || ::dup2(a.exec_fd, kExecFd) < 0) {
    FailChild(a.errpipe, IsolationStep::kSession, errno);
  }
  if (a.new_net) {
    if (int e = BringUpLoopbackInChild(); e != 0) FailChild(a.errpipe, IsolationStep::kNetwork, e);
  }
  int error = 0, index = 0;
  if (int step = SetupRootInChild(*a.root, &error, &index); step != 0) {
    FailChild(a.errpipe, static_cast<IsolationStep>(step), error, index);
  }
  if (::chdir(a.cwd) != 0) FailChild(a.errpipe, IsolationStep::kCwd, errno);
  // Nothing of hull's past fd 4 reaches the container (before seccomp: close_range is not in
  // every profile).
  syscall(SYS_close_range, kExecFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
  // Until sandbox-init's exec replaces it, PID 1 is hull's code, with (CLONE_VM) hull's live
  // memory, and the workload runs beside it for a moment: not dumpable, so that neither
  // /proc/1/mem, environ nor exe opens for the workload (ptrace access needs a capability it
  // lacks). The exec of sandbox-init makes PID 1 dumpable again; hull restores its own flag.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  int exec_error[2];
  if (::pipe2(exec_error, O_CLOEXEC) != 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  int step = 0;
  if (int e = ConfineInChild(*a.landlock, *a.caps, *a.seccomp, a.init_fd, &step); e != 0) {
    FailChild(a.errpipe, static_cast<IsolationStep>(step), e);
  }
  // The workload is forked here, confined, and sandbox-init exec'd after it adopts it (--adopt):
  // the workload starts without waiting for sandbox-init's exec and start. Every signal stays
  // blocked until sandbox-init reads them: one that comes meanwhile (SIGCHLD of a workload that
  // is already done, a `hull stop`) waits in the queue, across the exec.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  alignas(16) char workload_stack[32 << 10];
  WorkloadArgs w{a.workload_argv, a.envp, exec_error[1]};
  pid_t workload = ::clone(WorkloadMain, workload_stack + sizeof(workload_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &w);
  if (workload < 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  ::close(exec_error[1]);
  if (::fcntl(exec_error[0], F_SETFD, 0) != 0) FailChild(a.errpipe, IsolationStep::kExec, errno);
  FormatInt(a.adopt_pid, workload);
  FormatInt(a.exec_error_fd, exec_error[0]);
  syscall(SYS_execveat, a.init_fd, "", a.argv, a.envp, AT_EMPTY_PATH);
  FailChild(a.errpipe, IsolationStep::kExec, errno);
}

// argv[0] inside `root`, resolved as the container will (symlinks stay inside the root): an
// executable regular file, or why not.
std::string CheckExecutable(const std::string& root, const std::string& path) {
  int dirfd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return std::strerror(errno);
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT;
  int fd = static_cast<int>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how)));
  int err = errno;
  ::close(dirfd);
  if (fd < 0) return std::strerror(err);
  struct stat st;
  std::string why;
  if (::fstat(fd, &st) != 0) {
    why = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    why = "not a regular file";
  } else if ((st.st_mode & 0111) == 0) {
    why = "not executable";
  }
  ::close(fd);
  return why;
}

std::vector<std::string> EnvWithPath(const std::vector<std::string>& env) {
  std::vector<std::string> out = env;
  bool has_path = false;
  for (const auto& e : env) has_path |= e.rfind("PATH=", 0) == 0;
  if (!has_path) out.push_back(kDefaultPath);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// Whether `a` and `b` name the same file (dev and inode): for /proc/<pid>/exe.
bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// `fd` moved above the descriptors ChildMain dup2()s onto (0 to kExecFd), so that none of its
// sources is overwritten by another's copy (hull may start with 0-2 closed, 3-4 free). -1 stays.
int AboveChildFds(int fd) {
  if (fd < 0 || fd > kExecFd) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, kExecFd + 1);
  int e = errno;
  ::close(fd);
  errno = e;
  return moved;
}

// Waits for EOF on `exec_rd`, the read end of the pipe whose write end PID 1 holds as its
// --exec-fd: it closes it once the workload exec'd; after a failed exec it exits, the status
// line written, and the pipe closes with it; it does the same if it dies. Returns the
// workload's host pid: PID 1's child, no longer a copy of PID 1. 0 when the exec failed, the
// workload already ended, PID 1 died, or `wait` passed; *eof says whether EOF came.
pid_t AwaitWorkload(pid_t init, int exec_rd, const std::string& status_path, std::chrono::milliseconds wait,
                    bool* eof) {
  *eof = false;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{exec_rd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    char byte;
    ssize_t r = ::read(exec_rd, &byte, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // EOF (or an error: the pipe is no use either way)
  }
  *eof = true;
  if (!ReadFirstLine(status_path).empty()) return 0;
  const std::string self = "/proc/" + std::to_string(init);
  std::istringstream kids(ReadFirstLine(self + "/task/" + std::to_string(init) + "/children"));
  pid_t child = 0;
  if (kids >> child && child > 0 && !SameFile("/proc/" + std::to_string(child) + "/exe", self + "/exe")) return child;
  return 0;
}

CgroupLimits LimitsOf(const HullManifest& m) {
  CgroupLimits l;
  l.memory_bytes = m.limits.memory_mb << 20;
  l.cpu_percent = std::max<int64_t>(1, std::llround(m.limits.cpu * 100));
  l.pids_max = m.limits.pids;
  return l;
}

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// Opens a pidfd for the container's PID 1, checking it is still the same process.
Outcome<int> OpenInit(const ContainerState& s) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, s.pid, 0));
  if (pidfd < 0 || !InitAlive(s)) {
    if (pidfd >= 0) ::close(pidfd);
    return Runtime("container " + s.name + " is not running");
  }
  return pidfd;
}

Outcome<ContainerState> LoadFresh(const StateDir& dir, const std::string& name) {
  auto s = dir.Load(name);
  if (!s) return Fail(kExitRuntime, s.error());
  if (auto st = Refresh(dir, *s); !st) return Fail(kExitRuntime, st.error());
  return *s;
}

// The ids the container's 0 maps to with --rootless. An unprivileged hull maps its own (the
// kernel allows nothing else, and then setgroups must be "deny"); hull as root maps
// SUDO_UID/SUDO_GID when set (the user behind sudo), else kRootlessId, never 0.
struct IdMapping {
  uid_t uid;
  gid_t gid;
  bool deny_setgroups;
};
constexpr uid_t kRootlessId = 100000;

IdMapping RootlessMapping() {
  if (::geteuid() != 0) return {::geteuid(), ::getegid(), true};
  auto id_from = [](const char* var) -> uint32_t {
    const char* v = std::getenv(var);
    if (!v || !*v) return kRootlessId;
    char* end = nullptr;
    unsigned long n = std::strtoul(v, &end, 10);
    return (*end == '\0' && n > 0 && n < 0xffffffffUL) ? static_cast<uint32_t>(n) : kRootlessId;
  };
  return {id_from("SUDO_UID"), id_from("SUDO_GID"), false};
}

Status WriteProcFile(pid_t pid, const char* file, const std::string& text) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("writing " + path, errno);
  ssize_t n = ::write(fd, text.data(), text.size());
  bool ok = n == static_cast<ssize_t>(text.size());
  int err = n < 0 ? errno : EIO;  // a short write leaves errno as it was
  ::close(fd);
  if (!ok) return ErrnoError("writing " + path + " (\"" + text.substr(0, text.size() - 1) + "\")", err);
  return {};
}

// The parent's half of the fork-pipe dance: setgroups, gid_map, uid_map of the blocked child.
Status WriteIdMaps(pid_t pid, const IdMapping& ids) {
  if (ids.deny_setgroups) MT_RETURN_IF_ERROR(WriteProcFile(pid, "setgroups", "deny\n"));
  MT_RETURN_IF_ERROR(WriteProcFile(pid, "gid_map", "0 " + std::to_string(ids.gid) + " 1\n"));
  return WriteProcFile(pid, "uid_map", "0 " + std::to_string(ids.uid) + " 1\n");
}

// Opens the gate: one byte. SIGPIPE is blocked around the write (the hull CLI does not ignore
// it): a child that died before the gate is EPIPE here, and its own error is then reported.
int OpenGate(int fd) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t n;
  do {
    n = ::write(fd, "1", 1);
  } while (n < 0 && errno == EINTR);
  int err = n == 1 ? 0 : (n < 0 ? errno : EIO);
  if (err == EPIPE && !sigismember(&old, SIGPIPE)) {
    // Consume the SIGPIPE this thread raised before unblocking it.
    const timespec zero{0, 0};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return err;
}

// Runs `f` when the scope ends, unless dismissed.
template <class F>
struct OnExit {
  F f;
  bool armed = true;
  ~OnExit() {
    if (armed) f();
  }
};
template <class F>
OnExit(F) -> OnExit<F>;

}  // namespace

Outcome<ContainerState> Run(const StateDir& dir, const HullManifest& m, const RunOptions& options) {
  const std::string init_path = options.init_path.empty() ? FindSandboxInit() : options.init_path;
  if (init_path.empty() || ::access(init_path.c_str(), X_OK) != 0) {
    return Runtime("sandbox-init was not found (set MENTAT_SANDBOX_INIT or install it next to hull)");
  }
  const bool rootless = options.rootless;
  const bool bridge = m.network == "bridge";
  if (::geteuid() != 0 && !rootless) return Runtime("hull run needs root, or --rootless");
  if (::geteuid() != 0 && bridge) {
    return Runtime("network: \"bridge\" needs root (CAP_NET_ADMIN on the host), also with --rootless; "
                   "use \"none\" or \"host\"");
  }
  Ipv4Subnet subnet;
  uint32_t static_ip = 0;
  if (bridge) {
    auto sn = ParseSubnet(m.bridge.subnet);
    if (!sn) return ManifestError("bridge.subnet", sn.error().message());
    subnet = *sn;
    if (m.bridge.ip) {
      auto ip = ParseIpv4(*m.bridge.ip);
      if (!ip) return ManifestError("bridge.ip", ip.error().message());
      if (!subnet.Contains(*ip) || *ip == subnet.network || *ip == subnet.Gateway() || *ip == subnet.Broadcast()) {
        return ManifestError("bridge.ip", *m.bridge.ip + " is not a host address of " + subnet.ToString() +
                                              " other than the bridge's " + Ipv4ToString(subnet.Gateway()));
      }
      static_ip = *ip;
    }
  }
  if (auto st = dir.Ensure(); !st) return Fail(kExitRuntime, st.error());
  // Exactly one concurrent run of a name gets past this lock; the other is told so.
  auto lock = ContainerLock::Acquire(dir, m.name, false);
  if (!lock) return Fail(kExitRuntime, lock.error());
  if (auto old = dir.Load(m.name)) {
    if (old->status == "running" && InitAlive(*old)) {
      return Runtime("container " + m.name + " is already running (pid " + std::to_string(old->pid) + ")");
    }
    if (!old->cgroup.empty()) {
      if (auto g = CgroupHost::Probe()->Open(old->cgroup)) {
        (*g)->KillAll();
        (*g)->Destroy();
      }
    }
    // A run whose exit nobody recorded still holds its address.
    ReleaseNetwork(dir, *old);
  }
  const std::string cdir = dir.ContainerDir(m.name);
  for (const char* f : {"/state.json", "/stdout.log", "/stderr.log", "/exit-status.json", "/upper", "/work", "/root"}) {
    std::error_code ec;
    fs::remove_all(cdir + f, ec);
  }

  // The root: a directory is bound as it is; a .tar.gz is extracted once into the cache and
  // overlaid with a writable layer of this container's own.
  RootPlan plan;
  ContainerState s;
  std::error_code ec;
  if (m.rootfs.ends_with(".tar.gz")) {
    if (!fs::is_regular_file(m.rootfs, ec)) return ManifestError("rootfs", m.rootfs + " is not a file");
    auto cached = CachedRootfs(m.rootfs, dir.CacheDir());
    if (!cached) {
      if (cached.error().code() == Code::kInvalidArgument) return ManifestError("rootfs", cached.error().message());
      return Fail(kExitRuntime, cached.error());
    }
    plan.lower = {*cached};
    plan.upper = s.upper = cdir + "/upper";
    plan.work = s.work = cdir + "/work";
    plan.merged = cdir + "/root";
  } else {
    if (!fs::is_directory(m.rootfs, ec)) return ManifestError("rootfs", m.rootfs + " is not a directory");
    plan.lower = {m.rootfs};
    plan.bind_root = true;
  }
  plan.hostname = m.hostname.empty() ? m.name : m.hostname;
  bool argv0_in_volume = false;
  for (const auto& mt : m.mounts) {
    plan.volumes.push_back({mt.host, mt.container, mt.readonly});
    argv0_in_volume |= m.argv[0] == mt.container || m.argv[0].rfind(mt.container + "/", 0) == 0;
  }
  if (auto st = PlanRoot(plan); !st) {
    // PlanRoot names volumes[i]; the manifest calls them mounts[i].
    std::string msg = st.error().message();
    if (msg.rfind("volumes[", 0) == 0) {
      std::string field = "mounts" + msg.substr(7, msg.find(':') - 7);
      return ManifestError(field, msg.substr(msg.find(':') + 2));
    }
    return ManifestError("rootfs", msg);
  }
  s.root = plan.merged;
  if (rootless && ::geteuid() == 0 && plan.bind_root) {
    // The mapped id cannot create mount points in a root-owned rootfs: hull makes them.
    if (auto st = PremakeMountPoints(plan); !st) return Fail(kExitRuntime, st.error());
  }
  if (!argv0_in_volume) {
    const std::string lookup_root = plan.bind_root ? plan.merged : plan.lower[0];
    if (std::string why = CheckExecutable(lookup_root, m.argv[0]); !why.empty()) {
      return Fail(kExitExec, Error(Code::kInvalidArgument, "exec failed: " + m.argv[0] + ": " + why +
                                                               " (in rootfs " + m.rootfs + ")"));
    }
  }

  auto seccomp = BuildProfile(m.profile);
  if (!seccomp) return ManifestError("profile", seccomp.error().message());
  auto caps = PlanDropAllCaps();
  if (!caps) return Fail(kExitRuntime, caps.error());
  const LandlockPlan landlock = PlanLandlock();

  // The bridge, NAT and an address, before anything else is made: a refused static ip leaves
  // nothing behind. The lease is released on every failure below.
  uint32_t ip = 0;
  if (bridge) {
    if (auto st = EnsureBridge(m.bridge.name, subnet); !st) {
      return Runtime("bridge.name: " + st.error().message());
    }
    for (auto& w : EnsureMasquerade(m.bridge.name, subnet)) s.warnings.push_back(std::move(w));
    auto lease_dir = LeaseDirFor(m.bridge.name);
    if (!lease_dir) return Runtime("bridge: " + lease_dir.error().message());
    s.lease_dir = *lease_dir;
    LeaseRequest req{m.name, subnet, static_ip, ::getpid(), 0, /*delete_stale_veth=*/true};
    auto self = ReadProcStat(::getpid());
    if (!self) return Runtime("bridge: reading /proc/self/stat failed");
    req.owner_ticks = self->start_ticks;
    auto leased = AcquireLease(s.lease_dir, req);
    if (!leased) {
      if (leased.error().code() == Code::kConflict) {
        return Fail(kExitRuntime, Error(Code::kConflict, "bridge.ip: " + leased.error().message()));
      }
      return Runtime("bridge: " + leased.error().message());
    }
    ip = *leased;
    s.ip = Ipv4ToString(ip);
    s.host_veth = HostVethName(ip);
  }
  // Until the container runs, a failure gives the address back, and the veth once it is ours
  // (AttachVeth made it): first under `hull run`'s name, then under PID 1's.
  pid_t lease_owner = ::getpid();
  bool veth_made = false;
  OnExit release_lease{[&] { ReleaseLease(s.lease_dir, s.ip, m.name, lease_owner, veth_made ? s.host_veth : ""); }};

  // The cgroup (CgroupSetup): made now for a gated child (a fork, which sees only what exists
  // before it), or by `maker` beside the clone.
  const bool gated = rootless || bridge;
  CgroupSetup cgroup;
  const std::string group_path = dir.CgroupPath(m.name);
  const bool may_skip_cgroup = rootless && ::geteuid() != 0;
  std::thread maker;
  auto destroy_group = [&] {
    if (maker.joinable()) maker.join();
    if (cgroup.group) cgroup.group->Destroy();
  };
  if (gated) {
    cgroup.Make(group_path, LimitsOf(m), may_skip_cgroup);
    if (cgroup.error) return Fail(kExitRuntime, *cgroup.error);
  }

  // sandbox-init adopts the workload PID 1 forks (ChildMain): the child writes its pid and its
  // exec-error pipe into these two.
  char adopt_pid[12] = "", exec_error_fd[12] = "";
  std::vector<std::string> argv_s = {"sandbox-init", "--status-fd", std::to_string(kStatusFd),
                                     "--exec-fd", std::to_string(kExecFd), "--adopt", "", "--exec-error-fd", "", "--"};
  argv_s.insert(argv_s.end(), m.argv.begin(), m.argv.end());
  std::vector<std::string> workload_argv_s = m.argv;
  std::vector<std::string> env_s = EnvWithPath(m.env);
  auto argv = CStrings(argv_s);
  argv[6] = adopt_pid;
  argv[8] = exec_error_fd;
  auto workload_argv = CStrings(workload_argv_s);
  auto envp = CStrings(env_s);
  const std::string loginuid = std::to_string(::getuid());
  const std::string cwd = m.cwd.empty() ? "/" : m.cwd;

  std::vector<int> fds;
  auto close_all = [&] {
    for (int fd : fds) ::close(fd);
  };
  auto open_fd = [&](const std::string& path, int flags) {
    int fd = AboveChildFds(::open(path.c_str(), flags | O_CLOEXEC, 0640));
    if (fd >= 0) fds.push_back(fd);
    return fd;
  };
  auto dup_fd = [&](int given) {
    int fd = AboveChildFds(::fcntl(given, F_DUPFD_CLOEXEC, 0));
    if (fd >= 0) fds.push_back(fd);
    return fd;
  };
  int out_fd = options.stdout_fd >= 0
                   ? dup_fd(options.stdout_fd)
                   : open_fd(options.stdout_path.empty() ? dir.StdoutPath(m.name) : options.stdout_path,
                             O_WRONLY | O_CREAT | O_APPEND);
  int err_fd = options.stderr_fd >= 0
                   ? dup_fd(options.stderr_fd)
                   : open_fd(options.stderr_path.empty() ? dir.StderrPath(m.name) : options.stderr_path,
                             O_WRONLY | O_CREAT | O_APPEND);
  int null_fd = open_fd("/dev/null", O_RDONLY);
  int status_fd = open_fd(dir.ExitStatusPath(m.name), O_WRONLY | O_CREAT | O_TRUNC);
  int init_fd = open_fd(init_path, O_PATH);
  int errpipe[2] = {-1, -1};
  int exec_pipe[2] = {-1, -1};
  if (::pipe2(exec_pipe, O_CLOEXEC) == 0) {
    exec_pipe[1] = AboveChildFds(exec_pipe[1]);
    fds.push_back(exec_pipe[1]);  // the child's; the parent keeps the read end
  }
  OnExit close_exec_rd{[&] {
    if (exec_pipe[0] >= 0) ::close(exec_pipe[0]);
  }};
  int gate[2] = {-1, -1};
  if (gated && ::pipe2(gate, O_CLOEXEC) == 0) {
    fds.push_back(gate[0]);  // the parent closes its read end with the rest after clone
  }
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || status_fd < 0 || init_fd < 0 || exec_pipe[0] < 0 ||
      exec_pipe[1] < 0 || (gated && gate[0] < 0) || ::pipe2(errpipe, O_CLOEXEC) != 0 ||
      (errpipe[1] = AboveChildFds(errpipe[1])) < 0) {
    int e = errno;
    if (gate[1] >= 0) ::close(gate[1]);
    if (errpipe[0] >= 0) ::close(errpipe[0]);
    close_all();
    destroy_group();
    return Fail(kExitRuntime, ErrnoError("opening the container's files", e).error());
  }
  void* stack = ::mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int e = errno;
    close_all();
    ::close(errpipe[0]);
    ::close(errpipe[1]);
    if (gate[1] >= 0) ::close(gate[1]);
    destroy_group();
    return Fail(kExitRuntime, ErrnoError("mmap", e).error());
  }
  const bool new_net = m.network == "none" || bridge;
  const IdMapping ids = RootlessMapping();
  ChildArgs args{&cgroup, out_fd, err_fd, null_fd, status_fd, exec_pipe[1], init_fd, errpipe[1], gate[0], gate[1],
                 rootless, rootless && !ids.deny_setgroups, new_net,
                 loginuid.c_str(), &plan, cwd.c_str(), &landlock, caps->get(), &*seccomp,
                 argv.data(), workload_argv.data(), envp.data(), adopt_pid, exec_error_fd};
  int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (new_net) flags |= CLONE_NEWNET;
  if (rootless) flags |= CLONE_NEWUSER;
  // CLONE_VM|CLONE_VFORK: this thread waits until the child exec'd sandbox-init or died, so the
  // plan it reads stays put. A gated child must run while this thread writes its maps and
  // network: it gets a copy of the memory instead (a fork), and the plan in it stays put too.
  if (!gated) flags |= CLONE_VM | CLONE_VFORK;
  if (!gated) {
    try {
      maker = std::thread([&] { cgroup.Make(group_path, LimitsOf(m), may_skip_cgroup); });
    } catch (const std::system_error&) {
      cgroup.Make(group_path, LimitsOf(m), may_skip_cgroup);  // no thread to be had: now, then
    }
  }
  // The child shares our memory without a gate, and makes it undumpable for a moment (ChildMain).
  // What to restore is read once per process, before any such child: concurrent runs (the
  // agent's) would otherwise read each other's 0.
  static const int dumpable = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  pid_t pid = ::clone(ChildMain, static_cast<char*>(stack) + kChildStack, flags, &args);
  int clone_errno = errno;
  if (!gated && dumpable > 0) ::prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
  if (maker.joinable()) maker.join();
  ::munmap(stack, kChildStack);
  ::close(errpipe[1]);
  close_all();
  if (pid < 0) {
    ::close(errpipe[0]);
    if (gate[1] >= 0) ::close(gate[1]);
    destroy_group();
    return Fail(kExitRuntime, ErrnoError("clone", clone_errno).error());
  }
  if (cgroup.error) {
    // The child gave up waiting for it (ECANCELED): the group's own error says why.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(errpipe[0]);
    if (gate[1] >= 0) ::close(gate[1]);
    return Fail(kExitRuntime, *cgroup.error);
  }
  if (cgroup.group) {
    s.cgroup = cgroup.group->path();
    s.cgroup_version = cgroup.version;
  }
  if (!cgroup.warning.empty()) s.warnings.push_back(cgroup.warning);
  // The container exists once its PID 1 goes past the gate: before that, PID 1 owns the lease
  // and state.json names it, so a `hull run` killed at any moment leaves either a child that
  // dies at the closed gate or a container that every later command sees, with an address that
  // stays leased while PID 1 lives (no death of `hull run` makes it stale under a live PID 1).
  s.name = m.name;
  s.status = "running";
  s.pid = pid;
  s.started_at = Now();
  s.manifest = m;
  auto record_started = [&]() -> Status {
    auto st = ReadProcStat(pid);
    // Without its start time a lease would be born stale, and the record never alive.
    if (!st) return Internal("reading /proc/" + std::to_string(pid) + "/stat failed");
    s.start_ticks = st->start_ticks;
    if (bridge) {
      MT_RETURN_IF_ERROR(RecordLeaseOwner(s.lease_dir, ip, m.name, pid, s.start_ticks));
      lease_owner = pid;
    }
    return dir.Save(s);
  };
  if (gated) {
    // The child blocks on the gate: its user namespace gets its maps (only a process outside
    // can write them) and its network namespace its veth end, then it may go on.
    Status prep;
    const char* step = "";
    StopPoint("cloned");
    if (rootless) {
      step = "mapping uid/gid 0 (user namespace)";
      prep = WriteIdMaps(pid, ids);
      s.rootless_uid = ids.uid;
      s.rootless_gid = ids.gid;
    }
    if (prep && bridge) {
      step = "attaching the container to the bridge";
      // A stale holder's veth was deleted when its lease was reclaimed; one that exists now is
      // not ours to delete: AttachVeth fails on EEXIST and says so.
      prep = AttachVeth({m.bridge.name, s.host_veth, pid, ip, subnet, m.bridge.mtu});
      veth_made = static_cast<bool>(prep);
      if (prep) StopPoint("attached");
    }
    if (prep) {
      step = "recording PID 1";
      prep = record_started();
      if (prep) StopPoint("recorded");
    }
    if (prep) {
      step = "releasing the child";
      if (int e = OpenGate(gate[1]); e != 0) prep = ErrnoError("writing the gate", e);
      if (prep) StopPoint("released");
    }
    ::close(gate[1]);
    if (!prep) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      destroy_group();
      // The child's own failure (it died before the gate) says more than ours.
      std::error_code rm;
      fs::remove(cdir + "/state.json", rm);
      ChildFailure failure;
      const bool child_failed = ReadChildFailure(errpipe[0], &failure);  // closes it
      if (child_failed) {
        return Runtime(std::string("starting ") + m.name + ": " + StepName(static_cast<IsolationStep>(failure.step)) +
                       ": " + std::strerror(failure.error));
      }
      return Runtime(std::string("starting ") + m.name + ": " + step + ": " + prep.error().message());
    }
  }

  if (!gated) {
    // Made by clone(CLONE_VFORK): already exec'd sandbox-init (or failed, said below).
    if (auto st = record_started(); !st) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      ::close(errpipe[0]);
      destroy_group();
      std::error_code rm;
      fs::remove(cdir + "/state.json", rm);
      return Runtime(std::string("starting ") + m.name + ": recording PID 1: " + st.error().message());
    }
  }
  ChildFailure failure;
  if (ReadChildFailure(errpipe[0], &failure)) {
    ::waitpid(pid, nullptr, 0);
    destroy_group();
    std::error_code rm;
    fs::remove(cdir + "/state.json", rm);
    auto step = static_cast<IsolationStep>(failure.step);
    std::string why = std::strerror(failure.error);
    if (step == IsolationStep::kCwd) return ManifestError("cwd", cwd + ": " + why + " in the rootfs");
    if (rootless && step != IsolationStep::kExec) {
      // Most likely a permission the mapped id lacks: say which id, and what needs it.
      std::string what = StepName(step);
      if (step == IsolationStep::kVolume && failure.index < static_cast<int>(m.mounts.size())) {
        const auto& mt = m.mounts[failure.index];
        what += " (mounts[" + std::to_string(failure.index) + "]: " + mt.host + " on " + mt.container + ")";
      }
      return Runtime(std::string("starting ") + m.name + " rootless (as host uid " + std::to_string(ids.uid) +
                     "): " + what + ": " + why +
                     (step == IsolationStep::kVolume || step == IsolationStep::kOverlay || step == IsolationStep::kMountPropagation
                          ? " (the rootfs and mounts must be reachable by that uid)"
                          : ""));
    }
    if (step == IsolationStep::kVolume && failure.index < static_cast<int>(m.mounts.size())) {
      const auto& mt = m.mounts[failure.index];
      return ManifestError("mounts[" + std::to_string(failure.index) + "]",
                           mt.host + " on " + mt.container + ": " + why);
    }
    if (step == IsolationStep::kOverlay) why += OverlayUpperAdvice(plan.upper);
    return Runtime(std::string("starting ") + m.name + ": " + StepName(step) + ": " + why);
  }

  // A fresh audit session (differs from ours) identifies the container's seccomp records.
  const std::string ses = ReadFirstLine("/proc/" + std::to_string(pid) + "/sessionid");
  if (!ses.empty() && ses != ReadFirstLine("/proc/self/sessionid") && ses != "4294967295") {
    s.audit_session = std::strtoll(ses.c_str(), nullptr, 10);
  }
  bool eof = false;
  s.workload_pid = AwaitWorkload(pid, exec_pipe[0], dir.ExitStatusPath(m.name), options.exec_wait, &eof);
  if (eof && s.workload_pid == 0 && ReadFirstLine(dir.ExitStatusPath(m.name)).empty()) {
    // EOF with neither a workload nor a status: PID 1 is dying (the pipe closes as its files do,
    // a moment before it is a zombie). Wait for that, briefly, so it is seen dead below.
    if (int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, 1000);
      ::close(pidfd);
    }
  }
  // The lease belongs to PID 1 (above): it is stale once the container is gone, whoever sees it.
  release_lease.armed = false;
  if (auto st = dir.Save(s); !st) return Fail(kExitRuntime, st.error());

  const std::string status = ReadFirstLine(dir.ExitStatusPath(m.name));
  if (status.empty() && s.workload_pid == 0 && !InitAlive(s)) {
    // PID 1 died before starting the workload (e.g. killed by the profile): say how.
    ::waitpid(pid, nullptr, WNOHANG);
    Refresh(dir, s, nullptr, true);
    return Runtime("container " + m.name + " died before its workload started: " +
                   (s.exit ? s.exit->Describe() : "unknown"));
  }
  if (!status.empty()) {
    ExitInfo info = ExitInfo::FromJson(Json::parse(status, nullptr, false));
    if (!info.exec_error.empty()) {
      ::waitpid(pid, nullptr, 0);
      s.status = "exited";
      s.exit = info;
      s.finished_at = Now();
      destroy_group();
      ReleaseNetwork(dir, s);
      dir.Save(s);
      return Fail(kExitExec, Error(Code::kInvalidArgument, "exec failed: " + m.argv[0] + ": " + info.exec_error));
    }
  }
  return s;
}

Outcome<int> Exec(const StateDir& dir, const std::string& name, const std::vector<std::string>& argv_in) {
  auto s = LoadFresh(dir, name);
  if (!s) return std::unexpected(s.error());
  if (s->status != "running") return Runtime("container " + name + " is not running");
  auto pidfd = OpenInit(*s);
  if (!pidfd) return std::unexpected(pidfd.error());
  // Every namespace of PID 1 that is not ours (network "host" shares the host's).
  const int ns_flags = NamespacesToJoin(s->pid);
  auto seccomp = BuildProfile(s->manifest.profile);
  auto caps = PlanDropAllCaps();
  if (!seccomp || !caps) {
    ::close(*pidfd);
    return Fail(kExitRuntime, !seccomp ? seccomp.error() : caps.error());
  }
  const LandlockPlan landlock = PlanLandlock();
  std::vector<int> join_fds;
  if (!s->cgroup.empty()) {
    auto g = CgroupHost::Probe()->Open(s->cgroup);
    auto fds = g ? (*g)->OpenProcsFiles() : Result<std::vector<int>>(std::unexpected(g.error()));
    if (!fds) {
      ::close(*pidfd);
      return Fail(kExitRuntime, fds.error());
    }
    join_fds = std::move(*fds);
  }
  std::vector<std::string> argv_s = argv_in;
  std::vector<std::string> env_s = EnvWithPath(s->manifest.env);
  auto argv = CStrings(argv_s);
  auto envp = CStrings(env_s);
  const std::string cwd = s->manifest.cwd.empty() ? "/" : s->manifest.cwd;
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) return Runtime(std::string("pipe2: ") + std::strerror(errno));
  ::fflush(nullptr);
  pid_t middle = ::fork();
  if (middle == 0) {
    // Into the cgroup and the namespaces; the PID namespace applies to children only, so fork
    // once more and relay the command's status, as nsenter does.
    ::close(errpipe[0]);
    if (int e = JoinCgroupInChild(join_fds); e != 0) FailChild(errpipe[1], IsolationStep::kCgroup, e);
    if (::setns(*pidfd, ns_flags) != 0) FailChild(errpipe[1], IsolationStep::kJoinNamespaces, errno);
    if (ns_flags & CLONE_NEWUSER) {
      // A rootless container: become its uid/gid 0 (the mapped host id). Groups go when the
      // namespace allows setgroups (hull as root); otherwise they were denied to it anyway.
      // Raw system calls, as in ChildMain (no setxid broadcast after fork).
      if (syscall(SYS_setgroups, 0, nullptr) != 0 && errno != EPERM) FailChild(errpipe[1], IsolationStep::kUser, errno);
      if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0) {
        FailChild(errpipe[1], IsolationStep::kUser, errno);
      }
    }
    pid_t child = ::fork();
    if (child < 0) FailChild(errpipe[1], IsolationStep::kSession, errno);
    if (child == 0) {
      if (::chdir(cwd.c_str()) != 0) FailChild(errpipe[1], IsolationStep::kCwd, errno);
      int step = 0;
      if (int e = ConfineInChild(landlock, **caps, *seccomp, -1, &step); e != 0) {
        FailChild(errpipe[1], static_cast<IsolationStep>(step), e);
      }
      ::execvpe(argv[0], argv.data(), envp.data());
      FailChild(errpipe[1], IsolationStep::kExec, errno);
    }
    ::close(errpipe[1]);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
  }
  ::close(errpipe[1]);
  ::close(*pidfd);
  for (int fd : join_fds) ::close(fd);
  if (middle < 0) {
    ::close(errpipe[0]);
    return Runtime(std::string("fork: ") + std::strerror(errno));
  }
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  ChildFailure failure;
  if (ReadChildFailure(errpipe[0], &failure)) {
    auto step = static_cast<IsolationStep>(failure.step);
    std::string why = std::strerror(failure.error);
    if (step == IsolationStep::kExec) {
      return Fail(kExitExec, Error(Code::kInvalidArgument, "exec failed: " + argv_in[0] + ": " + why));
    }
        return Runtime("exec in " + name + ": " + StepName(step) + ": " + why);
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

Outcome<ContainerState> Stop(const StateDir& dir, const std::string& name, int sig,
                             std::chrono::milliseconds grace) {
  auto s = LoadFresh(dir, name);
  if (!s) return std::unexpected(s.error());
  if (s->status != "running") return *s;
  auto pidfd = OpenInit(*s);
  if (!pidfd) return LoadFresh(dir, name);
  auto wait_exit = [&](std::chrono::milliseconds d) {
    pollfd p{*pidfd, POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, static_cast<int>(d.count()));
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
  };
  ExitInfo hint;
  hint.signal = sig;
  hint.note = sig == SIGKILL ? "killed by hull kill" : "stopped by hull stop";
  // To PID 1 alone: sandbox-init forwards it to the workload (SIGKILL ends the namespace).
  if (syscall(SYS_pidfd_send_signal, *pidfd, sig, nullptr, 0) != 0 && errno != ESRCH) {
    int e = errno;
    ::close(*pidfd);
    return Runtime("signalling " + name + ": " + std::strerror(e));
  }
  if (!wait_exit(grace) && sig != SIGKILL) {
    syscall(SYS_pidfd_send_signal, *pidfd, SIGKILL, nullptr, 0);
    hint.signal = SIGKILL;
    hint.note = "SIGKILLed by hull stop after a " + std::to_string(grace.count()) + " ms grace period";
    wait_exit(std::chrono::milliseconds(5000));
  } else if (sig == SIGKILL) {
    wait_exit(std::chrono::milliseconds(5000));
  }
  ::close(*pidfd);
  // The exit is seen once PID 1 is no longer alive (a zombie counts as gone).
  for (int i = 0; i < 500 && InitAlive(*s); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (auto st = Refresh(dir, *s, &hint); !st) return Fail(kExitRuntime, st.error());
  return *s;
}

Outcome<Json> Inspect(const StateDir& dir, const std::string& name) {
  auto s = LoadFresh(dir, name);
  if (!s) return std::unexpected(s.error());
  Json j = {{"name", s->name},
            {"status", s->status},
            {"pid", s->pid},
            {"started_at", s->started_at},
            {"argv", s->manifest.argv},
            {"profile", s->manifest.profile},
            {"network", s->manifest.network},
            {"hostname", s->manifest.hostname.empty() ? s->name : s->manifest.hostname},
            {"rootfs", s->manifest.rootfs},
            {"root", s->root},
            {"manifest", s->manifest.ToJson()}};
  if (s->status == "running") j["uptime_seconds"] = Now() - s->started_at;
  if (s->rootless_uid >= 0) j["rootless"] = {{"uid", s->rootless_uid}, {"gid", s->rootless_gid}};
  if (!s->ip.empty()) {
    j["bridge"] = {{"name", s->manifest.bridge.name}, {"ip", s->ip}, {"host_veth", s->host_veth},
                   {"mtu", s->manifest.bridge.mtu}};
  }
  if (!s->warnings.empty()) j["warnings"] = s->warnings;
  if (s->exit) {
    j["exit"] = s->exit->ToJson();
    j["exit"]["description"] = s->exit->Describe();
    j["finished_at"] = s->finished_at;
  }
  Json cg = {{"path", s->cgroup}, {"version", s->cgroup_version}};
  if (s->status == "running" && !s->cgroup.empty()) {
    if (auto g = CgroupHost::Probe()->Open(s->cgroup)) {
      if (auto l = (*g)->Limits()) {
        Json limits = Json::object();
        limits["memory_bytes"] = l->memory_bytes ? Json(*l->memory_bytes) : Json(nullptr);
        limits["cpu_percent"] = l->cpu_percent ? Json(*l->cpu_percent) : Json(nullptr);
        limits["pids_max"] = l->pids_max ? Json(*l->pids_max) : Json(nullptr);
        cg["limits"] = limits;
      }
      if (auto st = (*g)->Stats()) {
        cg["usage"] = {{"memory_bytes", st->memory_bytes},
                       {"memory_peak_bytes", st->memory_peak_bytes},
                       {"cpu_usage_ns", st->cpu_usage_ns},
                       {"pids", st->pids},
                       {"pids_limit_hits", st->pids_limit_hits}};
      }
    }
  }
  j["cgroup"] = cg;
  if (s->status == "running") {
    // Every namespace of PID 1, and whether it is the container's own or the host's (ours).
    int own = 0;
    Json ns = NamespaceInodes(s->pid, &own);
    j["namespaces"] = ns;
    j["own_namespaces"] = own;
    // The first 12 breadth first: the root, the mounts on it (/proc, /dev, the volumes), then
    // the mounts on those; not the kernel's order, which is the order they were made (hull
    // clones the devices before /dev exists).
    struct Mount {
      Json json;
      std::vector<size_t> children;
    };
    std::vector<Mount> all;
    std::map<std::string, size_t> by_id;
    std::vector<std::pair<std::string, size_t>> parents;
    std::ifstream mi("/proc/" + std::to_string(s->pid) + "/mountinfo");
    for (std::string line; std::getline(mi, line);) {
      // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
      std::istringstream w(line);
      std::string id, parent, dev, root, point, opts, word;
      w >> id >> parent >> dev >> root >> point >> opts;
      while (w >> word && word != "-") {
      }
      std::string type, source;
      w >> type >> source;
      by_id[id] = all.size();
      parents.emplace_back(parent, all.size());
      all.push_back({{{"mountpoint", point}, {"type", type}, {"source", source}, {"options", opts}}, {}});
    }
    std::vector<size_t> roots;
    for (const auto& [parent, i] : parents) {
      auto p = by_id.find(parent);
      if (p == by_id.end() || p->second == i) {
        roots.push_back(i);  // the root's parent is outside the namespace
      } else {
        all[p->second].children.push_back(i);
      }
    }
    Json mounts = Json::array();
    std::vector<size_t> queue = roots;
    for (size_t at = 0; at < queue.size() && mounts.size() < 12; ++at) {
      mounts.push_back(all[queue[at]].json);
      queue.insert(queue.end(), all[queue[at]].children.begin(), all[queue[at]].children.end());
    }
    j["mounts"] = mounts;
  }
  return j;
}

}  // namespace mentat::hull
