#include "runtimes/sandbox/sandbox_driver.h"

#include <fcntl.h>
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
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "runtimes/exec/child_argv.h"
#include "runtimes/isolation/child.h"
#include "runtimes/isolation/confine.h"
#include "runtimes/isolation/confined_exec.h"
#include "runtimes/isolation/mounts.h"
#include "runtimes/registry.h"
#include "runtimes/sandbox/bases.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace mentat {
namespace fs = std::filesystem;
namespace {

constexpr int kStatusFd = 3;
constexpr size_t kChildStack = 256 << 10;

// Everything the cloned child needs, built before clone.
struct ChildArgs {
  const std::vector<int>* join_fds;
  int out_fd, err_fd, null_fd, status_fd, init_fd, errpipe;
  const RootPlan* root;
  const char* cwd;
  const LandlockPlan* landlock;
  const CapsPlan* caps;
  const SeccompProgram* seccomp;
  char* const* argv;
  char* const* envp;
};

int ChildMain(void* p) {
  const ChildArgs& a = *static_cast<ChildArgs*>(p);
  if (int e = JoinCgroupInChild(*a.join_fds); e != 0) FailChild(a.errpipe, IsolationStep::kCgroup, e);
  if (::setsid() < 0) FailChild(a.errpipe, IsolationStep::kSession, errno);
  ResetSignalsInChild();
  if (::dup2(a.null_fd, 0) < 0 || ::dup2(a.out_fd, 1) < 0 || ::dup2(a.err_fd, 2) < 0 ||
      ::dup2(a.status_fd, kStatusFd) < 0) {
    FailChild(a.errpipe, IsolationStep::kSession, errno);
  }
  int error = 0, index = 0;
  if (int step = SetupRootInChild(*a.root, &error, &index); step != 0) {
    FailChild(a.errpipe, static_cast<IsolationStep>(step), error, index);
  }
  if (::chdir(a.cwd) != 0) FailChild(a.errpipe, IsolationStep::kCwd, errno);
  // sandbox-init lives outside the root: Landlock must let it be executed.
  int step = 0;
  if (int e = ConfineInChild(*a.landlock, *a.caps, *a.seccomp, a.init_fd, &step); e != 0) {
    FailChild(a.errpipe, static_cast<IsolationStep>(step), e);
  }
  // Nothing of the agent leaks in past 0-3; the pipe and init's fd close on exec.
  syscall(SYS_close_range, kStatusFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
  syscall(SYS_execveat, a.init_fd, "", a.argv, a.envp, AT_EMPTY_PATH);
  FailChild(a.errpipe, IsolationStep::kExec, errno);
}

bool RunningAsRoot() { return ::geteuid() == 0; }

bool HasOverlayfs() {
  std::ifstream f("/proc/filesystems");
  for (std::string line; std::getline(f, line);) {
    if (line.find("\toverlay") != std::string::npos) return true;
  }
  return false;
}

void RefineSandboxExit(const Json& state, ExitResult& result) {
  // sandbox-init's report of its workload: exact even when init itself could only exit 128+N,
  // and known for recovered tasks, whose status the kernel keeps for a parent that is gone.
  std::ifstream f(state.value("statusFile", ""));
  std::string line;
  if (!f || !std::getline(f, line)) return;
  Json j = Json::parse(line, nullptr, false);
  if (!j.is_object()) return;
  if (j.contains("signal") && j["signal"].is_number_integer()) {
    result.signal = j["signal"].get<int>();
    result.exit_code.reset();
  } else if (j.contains("exit_code") && j["exit_code"].is_number_integer()) {
    result.exit_code = j["exit_code"].get<int>();
    result.signal.reset();
  }
  if (j.contains("exec_error") && j["exec_error"].is_string()) {
    result.message = "the workload could not be started: " + j["exec_error"].get<std::string>();
  }
}

Status ReleaseSandboxTask(const std::string& id, const Json& state) {
  // The overlay was mounted in the task's own mount namespace, gone with it: only the
  // directories remain, the writable layer with what the workload wrote.
  for (const char* key : {"upper", "work", "root"}) {
    std::string dir = state.value(key, "");
    if (dir.empty()) continue;
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) return Internal("sandbox: task " + id + ": removing " + dir + ": " + ec.message());
  }
  return {};
}

}  // namespace

std::string SandboxUnusable(const std::string& init_path) {
  if (!RunningAsRoot()) {
    return "the agent is not running as root (namespaces, mounts and pivot_root need it)";
  }
  if (!HasOverlayfs()) return "the kernel has no overlayfs";
  if (init_path.empty() || ::access(init_path.c_str(), X_OK) != 0) {
    return "sandbox-init was not found (set MENTAT_SANDBOX_INIT or install it next to the agent)";
  }
  return "";
}

Result<std::unique_ptr<SandboxDriver>> SandboxDriver::Create(SandboxDriverOptions options) {
  std::unique_ptr<SandboxDriver> d(new SandboxDriver(std::move(options)));
  SupervisorPolicy policy;
  // To sandbox-init alone: it forwards signals to the workload.
  policy.signal = SupervisorPolicy::SignalTarget::kLeader;
  policy.refine_exit = RefineSandboxExit;
  policy.release_task = ReleaseSandboxTask;
  MT_ASSIGN_OR_RETURN(d->supervisor_,
                      ProcessSupervisor::Create(d->Name(), std::move(d->sopts_.process), std::move(policy)));
  if (d->sopts_.init_path.empty()) d->sopts_.init_path = FindSandboxInit();
  d->unusable_ = SandboxUnusable(d->sopts_.init_path);
  MT_ASSIGN_OR_RETURN(auto seccomp, BuildSandboxSeccomp());
  d->seccomp_ = std::make_shared<const SeccompProgram>(std::move(seccomp));
  MT_ASSIGN_OR_RETURN(d->caps_, PlanDropAllCaps());
  d->landlock_ = PlanLandlock();
  if (!d->unusable_.empty()) {
    spdlog::warn("sandbox: this node cannot run sandboxes: {}", d->unusable_);
  } else {
    spdlog::info("sandbox: sandbox-init {}, Landlock ABI {}, seccomp denies {} syscalls",
                 d->sopts_.init_path, d->landlock_.abi, d->seccomp_->denied.size());
  }
  return d;
}

Json SandboxDriver::Fingerprint() {
  Json fp = supervisor_->Fingerprint();
  fp["healthy"] = unusable_.empty();
  fp["detail"] = unusable_.empty() ? "namespaces (pid, mount, uts, ipc), overlayfs root, no "
                                     "capabilities, seccomp, Landlock ABI " +
                                         std::to_string(landlock_.abi)
                                   : unusable_;
  fp["landlock"] = DescribeLandlock(landlock_);
  fp["seccomp"] = {{"denied", seccomp_->denied}};
  fp["init"] = sopts_.init_path;
  if (sopts_.describe_bases) fp["bases"] = sopts_.describe_bases();
  return fp;
}

Json SandboxDriver::Capabilities() const {
  return {{"exec", true},
          {"signal", true},
          {"recover", true},
          {"isolation", "namespaces"},
          {"namespaces", Json::array({"pid", "mount", "uts", "ipc"})},
          {"limits", Json::array({"memory", "cpu", "pids"})},
          {"volumes", true}};
}

Result<TaskHandle> SandboxDriver::Start(const TaskConfig& config) {
  return supervisor_->Start(config, [&](const ProcessSupervisor::SpawnIO& io) { return Spawn(config, io); });
}

Result<ProcessSupervisor::Spawned> SandboxDriver::Spawn(const TaskConfig& config,
                                                        const ProcessSupervisor::SpawnIO& io) {
  if (!unusable_.empty()) return FailedPrecondition(P() + "cannot run on this node: " + unusable_);
  const Json& spec = config.spec.is_object() ? config.spec : Json::object();
  if (spec.contains("user")) {
    // Not silently ignored: a sandbox's workload is uid 0 of the host with no capability.
    return InvalidArgument(P() + "user: the sandbox runs its workload as uid 0 without any "
                           "capability; a user of its own is not supported (use exec or hull)");
  }
  RootPlan plan;
  // Layers, top first: the app's own files over the base.
  if (spec.contains("rootfs") && spec["rootfs"].is_string()) {
    std::string rootfs = spec["rootfs"].get<std::string>();
    if (rootfs.empty() || rootfs[0] != '/') {
      return InvalidArgument(P() + "rootfs " + rootfs + " is not a path on this node (a relative "
                             "rootfs is packed and uploaded by mt apply)");
    }
    plan.lower.push_back(rootfs);
  }
  if (spec.contains("base") && spec["base"].is_string()) {
    std::string base = spec["base"].get<std::string>();
    if (!sopts_.resolve_base) return FailedPrecondition(P() + "base " + base + ": this agent has no bases");
    auto dir = sopts_.resolve_base(base);
    if (!dir) return std::unexpected(Error(dir.error().code(), P() + "base " + base + ": " + dir.error().message()));
    plan.lower.push_back(*dir);
  }
  plan.upper = config.task_dir + "/upper";
  plan.work = config.task_dir + "/work";
  plan.merged = config.task_dir + "/root";
  plan.hostname = config.id.substr(config.id.rfind('.') + 1).substr(0, 63);
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (const auto& v : spec["volumes"]) {
      plan.volumes.push_back({v.value("source", ""), v.value("target", ""), v.value("read_only", false)});
    }
  }
  MT_RETURN_IF_ERROR(PlanRoot(plan));
  // An app layer (the build output mt apply packed) is at /app: the app starts there.
  const std::string cwd = !config.cwd.empty() ? config.cwd : spec.value("rootfsIsApp", false) ? "/app" : "/";

  ChildArgv argv(Concat({"sandbox-init", "--status-fd", std::to_string(kStatusFd), "--", config.command},
                        config.args));
  ChildArgv envp(EnvStrings(config.env));

  const std::string status_path = config.task_dir + "/init-status";
  int status_fd = ::open(status_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (status_fd < 0) return ErrnoError(P() + "opening " + status_path, errno);
  int init_fd = ::open(sopts_.init_path.c_str(), O_PATH | O_CLOEXEC);
  if (init_fd < 0) {
    int e = errno;
    ::close(status_fd);
    return ErrnoError(P() + "opening " + sopts_.init_path, e);
  }
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(status_fd);
    ::close(init_fd);
    return ErrnoError(P() + "pipe2", e);
  }
  void* stack = ::mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int e = errno;
    for (int fd : {status_fd, init_fd, errpipe[0], errpipe[1]}) ::close(fd);
    return ErrnoError(P() + "mmap", e);
  }
  ChildArgs args{io.join_fds, io.out_fd, io.err_fd, io.null_fd, status_fd, init_fd, errpipe[1],
                 &plan, cwd.c_str(), &landlock_, caps_.get(), seccomp_.get(), argv.data(), envp.data()};
  // CLONE_VFORK: this thread waits until the child has exec'd or died, so the plan it reads
  // stays put, and nothing of the agent's memory is copied.
  pid_t pid = ::clone(ChildMain, static_cast<char*>(stack) + kChildStack,
                      CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_VM | CLONE_VFORK | SIGCHLD,
                      &args);
  int clone_errno = errno;
  ::munmap(stack, kChildStack);
  ::close(errpipe[1]);
  ::close(status_fd);
  ::close(init_fd);
  if (pid < 0) {
    ::close(errpipe[0]);
    return ErrnoError(P() + "clone", clone_errno);
  }
  ChildFailure failure;
  if (ReadChildFailure(errpipe[0], &failure)) {
    ::waitpid(pid, nullptr, 0);
    auto step = static_cast<IsolationStep>(failure.step);
    std::string what = StepName(step);
    if (step == IsolationStep::kVolume && failure.index < static_cast<int>(plan.volumes.size())) {
      what += " (volumes[" + std::to_string(failure.index) + "]: " + plan.volumes[failure.index].source +
              " on " + plan.volumes[failure.index].target + ")";
    } else if (step == IsolationStep::kCwd) {
      what += " " + cwd;
    }
    std::string advice = step == IsolationStep::kOverlay ? OverlayUpperAdvice(plan.upper) : "";
    Code code = step == IsolationStep::kCwd || step == IsolationStep::kVolume ? Code::kInvalidArgument
                                                                             : Code::kInternal;
    return MakeError(code, P() + "starting " + config.id + ": " + what + ": " + std::strerror(failure.error) + advice);
  }
  Json state = {{"root", plan.merged}, {"upper", plan.upper}, {"work", plan.work},
                {"statusFile", status_path}, {"layers", plan.lower}, {"cwd", cwd}};
  return ProcessSupervisor::Spawned{pid, state};
}

Result<ExecSessionPtr> SandboxDriver::Exec(const std::string& id, const ExecOptions& options,
                                           ExecCallbacks callbacks) {
  auto prepare = [this](const ProcessSupervisor::ExecTarget& target,
                        ProcessContext& context) -> Result<std::function<int()>> {
    EnterTaskRoot(target, context);
    return EnterConfinedTask(target.pidfd, CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID,
                             &landlock_, caps_.get(), seccomp_);
  };
  return supervisor_->Exec(id, options, std::move(callbacks), prepare);
}

// Bases are built from their recipes on first use, under <data dir>/bases.
MENTAT_REGISTER_DRIVER(sandbox, {
  .name = "sandbox",
  .root = WorkloadRoot::kRootfs,
  .make = [](const DriverContext& context) -> Result<DriverPtr> {
    SandboxDriverOptions o;
    o.process.core_mhz = context.core_mhz;
    o.process.cgroup_parent = "mentat-sandbox";
    o.init_path = context.sandbox_init;
    const std::string bases_dir = context.data_dir + "/bases";
    o.resolve_base = [bases_dir](const std::string& name) -> Result<std::string> {
      MT_ASSIGN_OR_RETURN(BaseInfo base, EnsureBase(bases_dir, name));
      return base.rootfs;
    };
    o.describe_bases = [bases_dir] {
      Json out = Json::array();
      if (auto bases = ListBases(bases_dir)) {
        for (const auto& b : *bases) out.push_back({{"name", b.name}, {"version", b.version}});
      }
      return out;
    };
    return CreateDriver<SandboxDriver>(std::move(o));
  },
  .probe = [](const DriverContext& context) -> Status {
    std::string why = SandboxUnusable(context.sandbox_init.empty() ? FindSandboxInit()
                                                                   : context.sandbox_init);
    if (!why.empty()) return FailedPrecondition("sandbox: " + why);
    return {};
  },
});

}  // namespace mentat
