#include "runtimes/hull/container.h"

#include "runtimes/isolation/namespaces.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

#include "runtimes/cgroups/cgroups.h"
#include "runtimes/hull/cgroup_setup.h"
#include "runtimes/hull/container_bridge.h"
#include "runtimes/hull/container_child.h"
#include "runtimes/hull/container_root.h"
#include "runtimes/hull/failures.h"
#include "runtimes/hull/gated_start.h"
#include "runtimes/hull/inspect.h"
#include "runtimes/hull/leases.h"
#include "runtimes/hull/compiled_profiles.h"
#include "runtimes/hull/profiles.h"
#include "runtimes/isolation/bridge.h"
#include "runtimes/isolation/caps.h"
#include "runtimes/isolation/child.h"
#include "runtimes/isolation/confine.h"
#include "runtimes/isolation/init_binary.h"
#include "runtimes/isolation/landlock.h"
#include "runtimes/isolation/mounts.h"

namespace mentat::hull {
namespace fs = std::filesystem;
namespace {

constexpr size_t kChildStack = 256 << 10;
constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

std::string WorkingDir(const HullManifest& m) { return m.cwd.empty() ? "/" : m.cwd; }

// Whatever a previous run of `name` left: its processes and cgroup, its address, its files. One
// that is still running is refused.
Outcome<void> ClearPreviousRun(const StateDir& dir, const std::string& name) {
  if (auto old = dir.Load(name)) {
    if (old->status == "running" && InitAlive(*old)) {
      return Runtime("container " + name + " is already running (pid " + std::to_string(old->pid) + ")");
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
  const std::string cdir = dir.ContainerDir(name);
  for (const char* f : {"/state.json", "/stdout.log", "/stderr.log", "/exit-status.json", "/upper", "/work", "/root"}) {
    std::error_code ec;
    fs::remove_all(cdir + f, ec);
  }
  return {};
}

// sandbox-init's command line, the workload's and their environment, built before clone.
// sandbox-init adopts the workload PID 1 forks (ChildMain): the child writes its pid and its
// exec-error pipe into adopt_pid and exec_error_fd, which argv points at (so no copies).
struct InitCommand {
  explicit InitCommand(const HullManifest& m);
  InitCommand(const InitCommand&) = delete;
  InitCommand& operator=(const InitCommand&) = delete;

  char adopt_pid[12] = "", exec_error_fd[12] = "";
  std::vector<std::string> argv_s, workload_argv_s, env_s;
  std::vector<char*> argv, workload_argv, envp;
  std::string loginuid, cwd;
};

InitCommand::InitCommand(const HullManifest& m) {
  argv_s = {"sandbox-init", "--status-fd", std::to_string(kStatusFd),
            "--exec-fd", std::to_string(kExecFd), "--adopt", "", "--exec-error-fd", "", "--"};
  argv_s.insert(argv_s.end(), m.argv.begin(), m.argv.end());
  workload_argv_s = m.argv;
  env_s = EnvWithPath(m.env);
  argv = CStrings(argv_s);
  argv[6] = adopt_pid;
  argv[8] = exec_error_fd;
  workload_argv = CStrings(workload_argv_s);
  envp = CStrings(env_s);
  loginuid = std::to_string(::getuid());
  cwd = WorkingDir(m);
}

// The descriptors PID 1 starts with, each above kExecFd (AboveChildFds), and the ends of its
// pipes the parent keeps: errpipe[0], exec_pipe[0] and, gated, gate[1].
struct ChildFiles {
  std::vector<int> fds;  // the child's: the parent closes them once it cloned
  int out = -1, err = -1, null = -1, status = -1, init = -1;
  int errpipe[2] = {-1, -1};
  int exec_pipe[2] = {-1, -1};
  int gate[2] = {-1, -1};

  void CloseChildEnds() {
    for (int fd : fds) ::close(fd);
  }
};

// One `hull run`, shared by its steps below: what Run decided before clone, what the steps made
// since, and so what a failure must undo. Each step returns a failure ready for the CLI, having
// undone what it must.
struct Start {
  const StateDir& dir;
  const HullManifest& m;
  const RunOptions& options;
  std::string init_path;
  bool rootless = false, bridge = false;
  bool gated = false;  // rootless or bridge: PID 1 waits at the gate (gated_start.h)
  BridgeAddress address;
  ContainerState s;
  RootPlan plan;
  SeccompProgram seccomp;
  std::unique_ptr<CapsPlan> caps;
  LandlockPlan landlock;
  uint32_t ip = 0;         // bridge: the leased address
  pid_t lease_owner = 0;   // `hull run` until PID 1 is recorded, then PID 1
  bool veth_made = false;  // AttachVeth made the host veth: it is ours to delete
  CgroupSetup cgroup;
  std::string group_path;
  bool may_skip_cgroup = false;
  ChildFiles files;
  IdMapping ids{};
  pid_t pid = -1;  // PID 1, once cloned
};

// Opens PID 1's files and pipes (ChildFiles). On failure none stays open but exec_pipe[0] (the
// caller's to close), and the cgroup is gone.
Outcome<void> OpenChildFiles(Start& st) {
  ChildFiles& f = st.files;
  const RunOptions& options = st.options;
  auto open_fd = [&](const std::string& path, int flags) {
    int fd = AboveChildFds(::open(path.c_str(), flags | O_CLOEXEC, 0640));
    if (fd >= 0) f.fds.push_back(fd);
    return fd;
  };
  auto dup_fd = [&](int given) {
    int fd = AboveChildFds(::fcntl(given, F_DUPFD_CLOEXEC, 0));
    if (fd >= 0) f.fds.push_back(fd);
    return fd;
  };
  f.out = options.stdout_fd >= 0
              ? dup_fd(options.stdout_fd)
              : open_fd(options.stdout_path.empty() ? st.dir.StdoutPath(st.m.name) : options.stdout_path,
                        O_WRONLY | O_CREAT | O_APPEND);
  f.err = options.stderr_fd >= 0
              ? dup_fd(options.stderr_fd)
              : open_fd(options.stderr_path.empty() ? st.dir.StderrPath(st.m.name) : options.stderr_path,
                        O_WRONLY | O_CREAT | O_APPEND);
  f.null = open_fd("/dev/null", O_RDONLY);
  f.status = open_fd(st.dir.ExitStatusPath(st.m.name), O_WRONLY | O_CREAT | O_TRUNC);
  f.init = open_fd(st.init_path, O_PATH);
  if (::pipe2(f.exec_pipe, O_CLOEXEC) == 0) {
    f.exec_pipe[1] = AboveChildFds(f.exec_pipe[1]);
    f.fds.push_back(f.exec_pipe[1]);  // the child's; the parent keeps the read end
  }
  if (st.gated && ::pipe2(f.gate, O_CLOEXEC) == 0) {
    f.fds.push_back(f.gate[0]);  // the parent closes its read end with the rest after clone
  }
  if (f.out < 0 || f.err < 0 || f.null < 0 || f.status < 0 || f.init < 0 || f.exec_pipe[0] < 0 ||
      f.exec_pipe[1] < 0 || (st.gated && f.gate[0] < 0) || ::pipe2(f.errpipe, O_CLOEXEC) != 0 ||
      (f.errpipe[1] = AboveChildFds(f.errpipe[1])) < 0) {
    int e = errno;
    if (f.gate[1] >= 0) ::close(f.gate[1]);
    if (f.errpipe[0] >= 0) ::close(f.errpipe[0]);
    f.CloseChildEnds();
    st.cgroup.Destroy();
    return Fail(kExitRuntime, ErrnoError("opening the container's files", e).error());
  }
  return {};
}

// Clones PID 1 (ChildMain) and takes the outcome of its cgroup: made before (gated) or by
// `maker` beside the clone. Afterwards the parent holds only its ends of the pipes.
Outcome<void> CloneInit(Start& st, InitCommand& command) {
  ChildFiles& f = st.files;
  void* stack = ::mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int e = errno;
    f.CloseChildEnds();
    ::close(f.errpipe[0]);
    ::close(f.errpipe[1]);
    if (f.gate[1] >= 0) ::close(f.gate[1]);
    st.cgroup.Destroy();
    return Fail(kExitRuntime, ErrnoError("mmap", e).error());
  }
  const bool new_net = st.m.network == "none" || st.bridge;
  st.ids = RootlessMapping();
  ChildArgs args{&st.cgroup, f.out, f.err, f.null, f.status, f.exec_pipe[1], f.init, f.errpipe[1], f.gate[0],
                 f.gate[1], st.rootless, st.rootless && !st.ids.deny_setgroups, new_net,
                 command.loginuid.c_str(), &st.plan, command.cwd.c_str(), &st.landlock, st.caps.get(), &st.seccomp,
                 command.argv.data(), command.workload_argv.data(), command.envp.data(), command.adopt_pid,
                 command.exec_error_fd};
  int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (new_net) flags |= CLONE_NEWNET;
  if (st.rootless) flags |= CLONE_NEWUSER;
  // CLONE_VM|CLONE_VFORK: this thread waits until the child exec'd sandbox-init or died, so the
  // plan it reads stays put. A gated child must run while this thread writes its maps and
  // network: it gets a copy of the memory instead (a fork), and the plan in it stays put too.
  if (!st.gated) flags |= CLONE_VM | CLONE_VFORK;
  std::thread maker;
  if (!st.gated) {
    try {
      maker = std::thread([&] { st.cgroup.Make(st.group_path, LimitsOf(st.m), st.may_skip_cgroup); });
    } catch (const std::system_error&) {
      st.cgroup.Make(st.group_path, LimitsOf(st.m), st.may_skip_cgroup);  // no thread to be had: now, then
    }
  }
  // The child shares our memory without a gate, and makes it undumpable for a moment (ChildMain).
  // What to restore is read once per process, before any such child: concurrent runs (the
  // agent's) would otherwise read each other's 0.
  static const int dumpable = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  pid_t pid = ::clone(ChildMain, static_cast<char*>(stack) + kChildStack, flags, &args);
  int clone_errno = errno;
  if (!st.gated && dumpable > 0) ::prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
  if (maker.joinable()) maker.join();
  ::munmap(stack, kChildStack);
  ::close(f.errpipe[1]);
  f.CloseChildEnds();
  if (pid < 0) {
    ::close(f.errpipe[0]);
    if (f.gate[1] >= 0) ::close(f.gate[1]);
    st.cgroup.Destroy();
    return Fail(kExitRuntime, ErrnoError("clone", clone_errno).error());
  }
  st.pid = pid;
  if (st.cgroup.error) {
    // The child gave up waiting for it (ECANCELED): the group's own error says why.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(f.errpipe[0]);
    if (f.gate[1] >= 0) ::close(f.gate[1]);
    return Fail(kExitRuntime, *st.cgroup.error);
  }
  if (st.cgroup.group) {
    st.s.cgroup = st.cgroup.group->path();
    st.s.cgroup_version = st.cgroup.version;
  }
  if (!st.cgroup.warning.empty()) st.s.warnings.push_back(st.cgroup.warning);
  return {};
}

// state.json names PID 1 with its start time, and so does the lease (bridge).
Status RecordStarted(Start& st) {
  auto stat = ReadProcStat(st.pid);
  // Without its start time a lease would be born stale, and the record never alive.
  if (!stat) return Internal("reading /proc/" + std::to_string(st.pid) + "/stat failed");
  st.s.start_ticks = stat->start_ticks;
  if (st.bridge) {
    MT_RETURN_IF_ERROR(RecordLeaseOwner(st.s.lease_dir, st.ip, st.m.name, st.pid, st.s.start_ticks));
    st.lease_owner = st.pid;
  }
  return st.dir.Save(st.s);
}

// After a failed start, once PID 1 is reaped: its cgroup and state.json go too, so that no
// later command sees a container that never ran.
void ForgetInit(Start& st) {
  st.cgroup.Destroy();
  std::error_code rm;
  fs::remove(st.dir.StatePath(st.m.name), rm);
}

// The child blocks on the gate: its user namespace gets its maps (only a process outside
// can write them) and its network namespace its veth end, then it may go on.
Outcome<void> ReleaseGatedChild(Start& st) {
  std::optional<VethPlan> veth;
  if (st.bridge) veth = VethPlan{st.m.bridge.name, st.s.host_veth, st.pid, st.ip, st.address.subnet, st.m.bridge.mtu};
  if (st.rootless) {
    st.s.rootless_uid = st.ids.uid;
    st.s.rootless_gid = st.ids.gid;
  }
  const GatedChild child{st.pid, st.files.gate[1], st.rootless ? &st.ids : nullptr, veth ? &*veth : nullptr};
  const char* step = "";
  Status prep = PrepareGatedChild(child, [&] { return RecordStarted(st); }, &st.veth_made, &step);
  if (prep) return {};
  ::kill(st.pid, SIGKILL);
  ::waitpid(st.pid, nullptr, 0);
  ForgetInit(st);
  // The child's own failure (it died before the gate) says more than ours.
  ChildFailure failure;
  const bool child_failed = ReadChildFailure(st.files.errpipe[0], &failure);  // closes it
  if (child_failed) {
    return Runtime(std::string("starting ") + st.m.name + ": " +
                   StepName(static_cast<IsolationStep>(failure.step)) + ": " + std::strerror(failure.error));
  }
  return Runtime(std::string("starting ") + st.m.name + ": " + step + ": " + prep.error().message());
}

// The container exists once its PID 1 goes past the gate: before that, PID 1 owns the lease
// and state.json names it, so a `hull run` killed at any moment leaves either a child that
// dies at the closed gate or a container that every later command sees, with an address that
// stays leased while PID 1 lives (no death of `hull run` makes it stale under a live PID 1).
Outcome<void> EstablishContainer(Start& st) {
  st.s.name = st.m.name;
  st.s.status = "running";
  st.s.pid = st.pid;
  st.s.started_at = Now();
  st.s.manifest = st.m;
  if (st.gated) return ReleaseGatedChild(st);
  // Made by clone(CLONE_VFORK): already exec'd sandbox-init (or failed, said below).
  if (auto recorded = RecordStarted(st); !recorded) {
    ::kill(st.pid, SIGKILL);
    ::waitpid(st.pid, nullptr, 0);
    ::close(st.files.errpipe[0]);
    ForgetInit(st);
    return Runtime(std::string("starting ") + st.m.name + ": recording PID 1: " + recorded.error().message());
  }
  return {};
}

// What to tell of a step of ChildMain that failed, naming the manifest's field where it is one.
std::unexpected<Failure> InitFailed(const Start& st, const ChildFailure& failure) {
  const HullManifest& m = st.m;
  auto step = static_cast<IsolationStep>(failure.step);
  std::string why = std::strerror(failure.error);
  if (step == IsolationStep::kCwd) return ManifestError("cwd", WorkingDir(m) + ": " + why + " in the rootfs");
  if (st.rootless && step != IsolationStep::kExec) {
    // Most likely a permission the mapped id lacks: say which id, and what needs it.
    std::string what = StepName(step);
    if (step == IsolationStep::kVolume && failure.index < static_cast<int>(m.mounts.size())) {
      const auto& mt = m.mounts[failure.index];
      what += " (mounts[" + std::to_string(failure.index) + "]: " + mt.host + " on " + mt.container + ")";
    }
    return Runtime(std::string("starting ") + m.name + " rootless (as host uid " + std::to_string(st.ids.uid) +
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
  if (step == IsolationStep::kOverlay) why += OverlayUpperAdvice(st.plan.upper);
  return Runtime(std::string("starting ") + m.name + ": " + StepName(step) + ": " + why);
}

// PID 1 exec'd sandbox-init, or says through the error pipe which step failed (closing it).
Outcome<void> CheckInitExecd(Start& st) {
  ChildFailure failure;
  if (!ReadChildFailure(st.files.errpipe[0], &failure)) return {};
  ::waitpid(st.pid, nullptr, 0);
  ForgetInit(st);
  return InitFailed(st, failure);
}

// The record's audit session, and the workload's pid once it exec'd (AwaitWorkload).
void AwaitStarted(Start& st) {
  const pid_t pid = st.pid;
  // A fresh audit session (differs from ours) identifies the container's seccomp records.
  const std::string ses = ReadFirstLine("/proc/" + std::to_string(pid) + "/sessionid");
  if (!ses.empty() && ses != ReadFirstLine("/proc/self/sessionid") && ses != "4294967295") {
    st.s.audit_session = std::strtoll(ses.c_str(), nullptr, 10);
  }
  bool eof = false;
  st.s.workload_pid =
      AwaitWorkload(pid, st.files.exec_pipe[0], st.dir.ExitStatusPath(st.m.name), st.options.exec_wait, &eof);
  if (eof && st.s.workload_pid == 0 && ReadFirstLine(st.dir.ExitStatusPath(st.m.name)).empty()) {
    // EOF with neither a workload nor a status: PID 1 is dying (the pipe closes as its files do,
    // a moment before it is a zombie). Wait for that, briefly, so it is seen dead below.
    if (int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, 1000);
      ::close(pidfd);
    }
  }
}

// The saved record of a started container, unless PID 1 or the workload's exec failed: then
// the record says how, and the failure too.
Outcome<ContainerState> ReportStart(Start& st) {
  const StateDir& dir = st.dir;
  const HullManifest& m = st.m;
  ContainerState& s = st.s;
  const std::string status = ReadFirstLine(dir.ExitStatusPath(m.name));
  if (status.empty() && s.workload_pid == 0 && !InitAlive(s)) {
    // PID 1 died before starting the workload (e.g. killed by the profile): say how.
    ::waitpid(st.pid, nullptr, WNOHANG);
    Refresh(dir, s, nullptr, true);
    return Runtime("container " + m.name + " died before its workload started: " +
                   (s.exit ? s.exit->Describe() : "unknown"));
  }
  if (!status.empty()) {
    ExitInfo info = ExitInfo::FromJson(Json::parse(status, nullptr, false));
    if (!info.exec_error.empty()) {
      ::waitpid(st.pid, nullptr, 0);
      s.status = "exited";
      s.exit = info;
      s.finished_at = Now();
      st.cgroup.Destroy();
      ReleaseNetwork(dir, s);
      dir.Save(s);
      return Fail(kExitExec, Error(Code::kInvalidArgument, "exec failed: " + m.argv[0] + ": " + info.exec_error));
    }
  }
  return s;
}

}  // namespace

Outcome<ContainerState> Run(const StateDir& dir, const HullManifest& m, const RunOptions& options) {
  Start st{dir, m, options};
  st.init_path = options.init_path.empty() ? FindSandboxInit() : options.init_path;
  if (st.init_path.empty() || ::access(st.init_path.c_str(), X_OK) != 0) {
    return Runtime("sandbox-init was not found (set MENTAT_SANDBOX_INIT or install it next to hull)");
  }
  st.rootless = options.rootless;
  st.bridge = m.network == "bridge";
  st.gated = st.rootless || st.bridge;
  if (::geteuid() != 0 && !st.rootless) return Runtime("hull run needs root, or --rootless");
  if (::geteuid() != 0 && st.bridge) {
    return Runtime("network: \"bridge\" needs root (CAP_NET_ADMIN on the host), also with --rootless; "
                   "use \"none\" or \"host\"");
  }
  if (st.bridge) {
    auto address = ParseBridgeAddress(m.bridge);
    if (!address) return std::unexpected(address.error());
    st.address = *address;
  }
  if (auto ensured = dir.Ensure(); !ensured) return Fail(kExitRuntime, ensured.error());
  // Exactly one concurrent run of a name gets past this lock; the other is told so.
  auto lock = ContainerLock::Acquire(dir, m.name, false);
  if (!lock) return Fail(kExitRuntime, lock.error());
  if (auto cleared = ClearPreviousRun(dir, m.name); !cleared) return std::unexpected(cleared.error());
  if (auto planned = PlanContainerRoot(dir, m, st.rootless, st.plan, st.s); !planned) {
    return std::unexpected(planned.error());
  }
  auto seccomp = BuildProfile(m.profile);
  if (!seccomp) return ManifestError("profile", seccomp.error().message());
  st.seccomp = std::move(*seccomp);
  auto caps = PlanDropAllCaps();
  if (!caps) return Fail(kExitRuntime, caps.error());
  st.caps = std::move(*caps);
  st.landlock = PlanLandlock();

  // The bridge, NAT and an address, before anything else is made: a refused static ip leaves
  // nothing behind. The lease is released on every failure below.
  if (st.bridge) {
    auto leased = LeaseBridgeAddress(m, st.address, st.s);
    if (!leased) return std::unexpected(leased.error());
    st.ip = *leased;
  }
  // Until the container runs, a failure gives the address back, and the veth once it is ours
  // (AttachVeth made it): first under `hull run`'s name, then under PID 1's.
  st.lease_owner = ::getpid();
  OnExit release_lease{[&] {
    ReleaseLease(st.s.lease_dir, st.s.ip, m.name, st.lease_owner, st.veth_made ? st.s.host_veth : "");
  }};

  // The cgroup (CgroupSetup): made now for a gated child (a fork, which sees only what exists
  // before it), or by a thread beside the clone (CloneInit).
  st.group_path = dir.CgroupPath(m.name);
  st.may_skip_cgroup = st.rootless && ::geteuid() != 0;
  if (st.gated) {
    st.cgroup.Make(st.group_path, LimitsOf(m), st.may_skip_cgroup);
    if (st.cgroup.error) return Fail(kExitRuntime, *st.cgroup.error);
  }
  InitCommand command(m);
  OnExit close_exec_rd{[&] {
    if (st.files.exec_pipe[0] >= 0) ::close(st.files.exec_pipe[0]);
  }};
  if (auto opened = OpenChildFiles(st); !opened) return std::unexpected(opened.error());
  if (auto cloned = CloneInit(st, command); !cloned) return std::unexpected(cloned.error());
  if (auto established = EstablishContainer(st); !established) return std::unexpected(established.error());
  if (auto execd = CheckInitExecd(st); !execd) return std::unexpected(execd.error());
  AwaitStarted(st);
  // The lease belongs to PID 1 (EstablishContainer): it is stale once the container is gone,
  // whoever sees it.
  release_lease.armed = false;
  if (auto saved = dir.Save(st.s); !saved) return Fail(kExitRuntime, saved.error());
  return ReportStart(st);
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
  const std::string cwd = WorkingDir(s->manifest);
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
  return InspectState(*s);
}

}  // namespace mentat::hull
