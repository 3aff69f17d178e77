#include "runtimes/hull/hull_driver.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string_view>

#include <spdlog/spdlog.h>

#include "runtimes/exec/child_argv.h"
#include "runtimes/hull/container.h"
#include "runtimes/hull/leases.h"
#include "runtimes/hull/compiled_profiles.h"
#include "runtimes/hull/profiles.h"
#include "runtimes/hull/seccomp_audit.h"
#include "runtimes/isolation/child.h"
#include "runtimes/isolation/confine.h"
#include "runtimes/isolation/confined_exec.h"
#include "runtimes/isolation/bridge.h"
#include "runtimes/isolation/init_binary.h"
#include "runtimes/isolation/namespaces.h"
#include "runtimes/registry.h"

namespace mentat {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxHullName = 64;
// How long a SIGSYS death waits for its audit record (kauditd prints it from its own thread).
constexpr std::chrono::milliseconds kSeccompRecordWait{2000};

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "manifest: ...", with each field problem of a hull manifest error named under `prefix`.
Error Prefixed(const Error& e, const std::string& prefix, const std::string& what) {
  std::string msg = what + ": " + e.message();
  std::vector<FieldError> details;
  for (const auto& d : e.details()) {
    details.push_back({prefix + d.field, d.line, d.column, d.message});
    msg += "; " + prefix + d.field + ": " + d.message;
  }
  return Error(e.code(), msg, details);
}

// "K=V" entries of `extra` replace those of `base` with the same name, or are added.
std::vector<std::string> MergeEnv(std::vector<std::string> base, const std::vector<EnvVar>& extra) {
  for (const auto& e : extra) {
    const std::string prefix = e.name + "=";
    bool replaced = false;
    for (auto& b : base) {
      if (b.rfind(prefix, 0) == 0) {
        b = prefix + e.value;
        replaced = true;
      }
    }
    if (!replaced) base.push_back(prefix + e.value);
  }
  return base;
}

}  // namespace

std::string HullNameForTask(const std::string& id) {
  std::string name;
  for (char c : id) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  // Two ids can map to the same characters ("a.b-c", "a-b.c"): a hash of the id tells them apart.
  char hash[8];
  std::snprintf(hash, sizeof(hash), "%06zx", std::hash<std::string>{}(id) & 0xffffff);
  name = name.substr(0, kMaxHullName - 7);
  while (!name.empty() && name.back() == '-') name.pop_back();
  return (name.empty() ? "task" : name) + "-" + hash;
}

Result<HullManifest> HullManifestForTask(const TaskConfig& config, int64_t core_mhz) {
  const Json spec = config.spec.is_object() ? config.spec : Json::object();
  Json j = Json::object();
  // The base: spec.manifest, a file on this node or inline, validated as hull validates it.
  if (spec.contains("manifest")) {
    const Json& m = spec["manifest"];
    Result<HullManifest> base = std::unexpected(Error(Code::kInvalidArgument, ""));
    if (m.is_string()) {
      const std::string path = m.get<std::string>();
      std::error_code ec;
      if (!fs::is_regular_file(path, ec)) {
        return InvalidArgument("manifest: " + path + " is not a file on this node");
      }
      base = HullManifest::Parse(ReadFile(path));
      if (!base) return std::unexpected(Prefixed(base.error(), "manifest.", "manifest " + path));
    } else if (m.is_object()) {
      base = HullManifest::FromJson(m);
      if (!base) return std::unexpected(Prefixed(base.error(), "manifest.", "manifest"));
    } else {
      return InvalidArgument("manifest: must be a path on the node or a hull manifest object");
    }
    j = base->ToJson();
  }
  j["name"] = HullNameForTask(config.id);
  if (spec.contains("rootfs") && spec["rootfs"].is_string()) {
    j["rootfs"] = spec["rootfs"];
  } else if (!j.contains("rootfs")) {
    return InvalidArgument("rootfs: required (or a manifest that has one)");
  }
  if (!config.command.empty()) {
    std::string argv0 = config.command;
    if (argv0[0] != '/') {
      // As the workload's PATH would find it, in the root it will run in.
      std::string path_env;
      for (const auto& e : config.env) {
        if (e.name == "PATH") path_env = e.value;
      }
      argv0 = ResolveOnPath(argv0, path_env, j["rootfs"].get<std::string>());
      if (argv0[0] != '/') {
        return InvalidArgument("command: " + config.command + " is not on the PATH of rootfs " +
                               j["rootfs"].get<std::string>() + "; give an absolute path");
      }
    }
    Json argv = Json::array({argv0});
    for (const auto& a : config.args) argv.push_back(a);
    j["argv"] = argv;
  } else if (!j.contains("argv")) {
    return InvalidArgument("command: required (or a manifest with argv)");
  }
  j["env"] = MergeEnv(j.value("env", std::vector<std::string>{}), config.env);
  if (!config.cwd.empty()) j["cwd"] = config.cwd;

  // resources: the Service's limits replace the manifest's, one by one.
  MT_ASSIGN_OR_RETURN(CgroupLimits limits, LimitsFromSpec(spec, core_mhz));
  if (!j.contains("limits")) j["limits"] = Json::object();
  if (limits.memory_bytes) j["limits"]["memory_mb"] = *limits.memory_bytes >> 20;
  if (limits.cpu_percent) j["limits"]["cpu"] = static_cast<double>(*limits.cpu_percent) / 100.0;
  if (limits.pids_max) j["limits"]["pids"] = *limits.pids_max;

  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    Json mounts = j.value("mounts", Json::array());
    for (const auto& v : spec["volumes"]) {
      mounts.push_back({{"host", v.value("source", "")},
                        {"container", v.value("target", "")},
                        {"readonly", v.value("read_only", false)}});
    }
    j["mounts"] = mounts;
  }
  const Json hull = spec.value("hull", Json::object());
  for (const char* key : {"profile", "network", "hostname"}) {
    if (hull.is_object() && hull.contains(key)) j[key] = hull[key];
  }
  if (!j.contains("network")) {
    // hull's default is no network; a Service with a port must be reachable on it.
    const bool has_port = spec.contains("port") || spec.contains("ports");
    j["network"] = has_port ? "host" : "none";
  }
  auto m = HullManifest::FromJson(j);
  if (!m) {
    // Problems of the generated manifest, named by the manifest's fields ("limits.pids").
    return std::unexpected(Prefixed(m.error(), "", "the generated hull manifest is invalid"));
  }
  if (m->network == "bridge") {
    // A task's manifest must not make the agent (root) address or forward for a host link: only
    // bridges hull owns, named "hull..." (not a host veth's "hullv...").
    const std::string& b = m->bridge.name;
    if (b.rfind("hull", 0) != 0 || b.rfind(kHostVethPrefix, 0) == 0) {
      return InvalidArgument("bridge.name: " + b + " is not a hull bridge: a task may use hull0 or another "
                             "name starting with \"hull\" (not \"" + kHostVethPrefix + "\")");
    }
  }
  return m;
}

HullDriver::HullDriver(HullDriverOptions options)
    : hopts_(std::move(options)),
      dir_(hopts_.state_dir.empty() ? hull::ResolveStateDir() : hopts_.state_dir) {}

Result<std::unique_ptr<HullDriver>> HullDriver::Create(HullDriverOptions options) {
  std::unique_ptr<HullDriver> d(new HullDriver(std::move(options)));
  SupervisorPolicy policy;
  // To the container's PID 1 alone: sandbox-init forwards signals to the workload.
  policy.signal = SupervisorPolicy::SignalTarget::kLeader;
  policy.refine_exit = [p = d.get()](const Json& state, ExitResult& result) {
    p->RefineExit(state, result);
  };
  policy.release_task = [p = d.get()](const std::string& id, const Json& state) {
    return p->ReleaseTask(id, state);
  };
  MT_ASSIGN_OR_RETURN(d->supervisor_,
                      ProcessSupervisor::Create(d->Name(), std::move(d->hopts_.process), std::move(policy)));
  if (d->hopts_.init_path.empty()) d->hopts_.init_path = FindSandboxInit();
  if (::geteuid() != 0) {
    d->unusable_ = "the agent is not running as root (hull's namespaces, mounts and cgroups need it)";
  } else if (d->hopts_.init_path.empty() || ::access(d->hopts_.init_path.c_str(), X_OK) != 0) {
    d->unusable_ = "sandbox-init was not found (set MENTAT_SANDBOX_INIT or install it next to the agent)";
  } else if (!d->supervisor_->cgroups_unusable().empty()) {
    d->unusable_ = "cgroups are not usable: " + d->supervisor_->cgroups_unusable();
  } else if (auto st = d->dir_.Ensure(); !st) {
    d->unusable_ = "hull's state directory " + d->dir_.root() + ": " + st.error().message();
  }
  MT_ASSIGN_OR_RETURN(d->caps_, PlanDropAllCaps());
  d->landlock_ = PlanLandlock();
  if (!d->unusable_.empty()) {
    spdlog::warn("hull: this node cannot run hull containers: {}", d->unusable_);
  } else {
    spdlog::info("hull: containers recorded in {}, sandbox-init {}", d->dir_.root(), d->hopts_.init_path);
  }
  return d;
}

Json HullDriver::Fingerprint() {
  Json fp = supervisor_->Fingerprint();
  fp["healthy"] = unusable_.empty();
  fp["detail"] = unusable_.empty() ? "hull containers (seed 003): pid, mount, uts, ipc, cgroup and "
                                     "network namespaces, pivot_root, seccomp allowlists, Landlock "
                                     "ABI " + std::to_string(landlock_.abi) + ", cgroup limits"
                                   : unusable_;
  fp["state_dir"] = dir_.root();
  fp["init"] = hopts_.init_path;
  fp["profiles"] = HullProfiles();
  return fp;
}

Json HullDriver::Capabilities() const {
  return {{"exec", true},
          {"signal", true},
          {"recover", true},
          {"isolation", "namespaces"},
          {"namespaces", Json::array({"pid", "mount", "uts", "ipc", "cgroup", "net"})},
          {"limits", Json::array({"memory", "cpu", "pids"})},
          {"volumes", true},
          {"profiles", HullProfiles()}};
}

Result<hull::ContainerState> HullDriver::RunBinary(const std::string& binary, const TaskConfig& config,
                                                   const std::string& manifest_path,
                                                   const std::string& name) {
  // The operator's hull (e.g. a sudo wrapper) runs the container; it records it in the same
  // state directory, from where the driver takes over as for an in-process run.
  const std::string err_path = config.task_dir + "/hull-run.err";
  ChildArgv argv({binary, "run", manifest_path});
  // The environment is built before fork: the agent has threads, and the child may only make
  // async-signal-safe calls (setenv is not; it can deadlock on a lock held by another thread).
  std::vector<std::string> env_s;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (v.starts_with("HULL_STATE_DIR=") || v.starts_with("MENTAT_SANDBOX_INIT=")) continue;
    env_s.emplace_back(v);
  }
  env_s.push_back("HULL_STATE_DIR=" + dir_.root());
  env_s.push_back("MENTAT_SANDBOX_INIT=" + hopts_.init_path);
  ChildArgv envp(std::move(env_s));
  pid_t pid = ::fork();
  if (pid == 0) {
    // O_CLOEXEC: dup2 makes the copies hull gets; the originals must not leak into it.
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (null_fd >= 0) ::dup2(null_fd, 0), ::dup2(null_fd, 1);
    if (err_fd >= 0) ::dup2(err_fd, 2);
    ::execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  if (pid < 0) return ErrnoError(P() + "fork", errno);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string why = ReadFile(err_path);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return MakeError(code == hull::kExitManifest || code == hull::kExitExec ? Code::kInvalidArgument
                                                                           : Code::kInternal,
                     P() + "binary " + binary + " run exited " + std::to_string(code) + ": " + why);
  }
  return dir_.Load(name);
}

Result<hull::ContainerState> HullDriver::RunInProcess(const TaskConfig& config,
                                                      const HullManifest& m, Json& relay_state) {
  const std::string out_path = config.task_dir + "/stdout.log";
  const std::string err_path = config.task_dir + "/stderr.log";
  hull::RunOptions ro;
  ro.init_path = hopts_.init_path;
  ro.stdout_path = out_path;
  ro.stderr_path = err_path;
  // The output goes through the task's log relay, or straight into the files.
  std::optional<LogRelay> relay = supervisor_->StartRelay(config);
  if (relay) {
    ro.stdout_fd = relay->out_fd;
    ro.stderr_fd = relay->err_fd;
  }
  auto run = hull::Run(dir_, m, ro);
  if (relay) {
    // The container has its own copies now (or failed, and the relay sees end of file).
    ::close(relay->out_fd);
    ::close(relay->err_fd);
  }
  if (!run) {
    const Error& e = run.error().error;
    Code code = run.error().exit_code == hull::kExitManifest || run.error().exit_code == hull::kExitExec
                    ? Code::kInvalidArgument
                    : e.code();
    std::string msg = P() + "starting " + config.id + " (container " + m.name + "): " + e.message();
    for (const auto& d : e.details()) msg += "; " + d.field + ": " + d.message;
    return std::unexpected(Error(code, msg, e.details()));
  }
  if (relay) RecordLogRelay(*relay, relay_state);
  // `hull logs <name>` reads the container directory: it finds the task's logs there.
  std::error_code ec;
  for (const auto& [link, target] : {std::pair{dir_.StdoutPath(m.name), out_path}, {dir_.StderrPath(m.name), err_path}}) {
    fs::remove(link, ec);
    fs::create_symlink(target, link, ec);
  }
  return std::move(*run);
}

Result<TaskHandle> HullDriver::Start(const TaskConfig& config) {
  if (!unusable_.empty()) return FailedPrecondition(P() + "cannot run on this node: " + unusable_);
  auto manifest = HullManifestForTask(config, supervisor_->options().core_mhz);
  if (!manifest) {
    return std::unexpected(Error(manifest.error().code(), P() + manifest.error().message(),
                                 manifest.error().details()));
  }
  const HullManifest& m = *manifest;
  const std::string binary = config.spec.is_object() ? config.spec.value("binary", "") : "";
  if (!binary.empty() && ::access(binary.c_str(), X_OK) != 0) {
    return FailedPrecondition(P() + "binary: " + binary + " is not an executable on node (" +
                              std::strerror(errno) + "); install hull there or drop binary to run "
                              "containers in the agent");
  }
  if (supervisor_->Running(config.id)) {
    return MakeError(Code::kAlreadyExists, P() + "task " + config.id + " is already running");
  }
  std::error_code ec;
  fs::create_directories(config.task_dir, ec);
  if (ec) return Internal(P() + "creating " + config.task_dir + ": " + ec.message());
  // What runs, for the operator to read (and for `binary`, what it is given).
  const std::string manifest_path = config.task_dir + "/hull-manifest.json";
  {
    std::ofstream f(manifest_path, std::ios::trunc);
    f << m.ToJson().dump(2) << "\n";
    if (!f) return Internal(P() + "writing " + manifest_path);
  }
  hull::ContainerState s;
  Json relay_state = Json::object();
  if (!binary.empty()) {
    MT_ASSIGN_OR_RETURN(s, RunBinary(binary, config, manifest_path, m.name));
    // That hull wrote the logs in its container directory: the task directory gets the same
    // files (hard links, so the agent reads and rotates what the workload writes).
    for (const auto& [from, to] : {std::pair{dir_.StdoutPath(m.name), config.task_dir + "/stdout.log"},
                                   {dir_.StderrPath(m.name), config.task_dir + "/stderr.log"}}) {
      fs::remove(to, ec);
      if (::link(from.c_str(), to.c_str()) != 0) {
        spdlog::warn("hull: task {}: linking {} to {}: {}", config.id, from, to, std::strerror(errno));
      }
    }
  } else {
    MT_ASSIGN_OR_RETURN(s, RunInProcess(config, m, relay_state));
  }

  TaskHandle handle;
  handle.driver = Name();
  handle.id = config.id;
  handle.state = {{"pid", s.pid},
                  {"startTicks", s.start_ticks},
                  {"startedAt", NowRfc3339()},
                  {"taskDir", config.task_dir},
                  {"name", m.name},
                  {"stateDir", dir_.root()},
                  {"statusFile", dir_.ExitStatusPath(m.name)},
                  {"manifest", manifest_path},
                  {"profile", m.profile},
                  {"cwd", m.cwd},
                  {"auditSession", s.audit_session},
                  {"workloadPid", s.workload_pid},
                  {"memoryLimitBytes", m.limits.memory_mb << 20}};
  if (!s.cgroup.empty()) handle.state["cgroup"] = s.cgroup;
  if (!binary.empty()) handle.state["binary"] = binary;
  handle.state.update(relay_state);
  if (auto st = supervisor_->Adopt(handle); !st) {
    if (st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    // Only a container run by `binary` (not our child) can be gone already; it said how.
    return Internal(P() + "container " + m.name + " ended at once: " +
                    (s.exit ? s.exit->Describe() : ReadFile(dir_.ExitStatusPath(m.name))));
  }
  spdlog::debug("hull: started {} as container {} (pid {}, cgroup {})", config.id, m.name, s.pid, s.cgroup);
  return handle;
}

Status HullDriver::Recover(const TaskHandle& handle) {
  if (handle.driver != Name()) return InvalidArgument(P() + "handle belongs to " + handle.driver);
  const std::string name = handle.state.value("name", "");
  if (name.empty()) return InvalidArgument(P() + "handle has no container name");
  // hull's record is the truth: the container runs while its PID 1 lives with the recorded
  // start time; the handle must name that same process.
  hull::StateDir dir(handle.state.value("stateDir", dir_.root()));
  auto s = dir.Load(name);
  if (!s) return NotFound(P() + "task " + handle.id + ": container " + name + " is gone (no record)");
  if (!hull::InitAlive(*s) || s->pid != handle.state.value("pid", 0) ||
      s->start_ticks != handle.state.value("startTicks", uint64_t{0})) {
    // The record says how it ended, and its cgroup goes (Refresh removes it).
    if (auto st = hull::Refresh(dir, *s); !st) spdlog::warn("hull: {}", st.error().message());
    return NotFound(P() + "task " + handle.id + ": container " + name + " (pid " +
                    std::to_string(handle.state.value("pid", 0)) + ") is not running" +
                    (s->exit ? ": " + s->exit->Describe() : std::string()));
  }
  TaskHandle h = handle;
  if (!s->cgroup.empty()) h.state["cgroup"] = s->cgroup;
  return supervisor_->Recover(h);
}

void HullDriver::RefineExit(const Json& state, ExitResult& result) {
  // sandbox-init's report of its workload: exact even after a recovery, when the container's
  // PID 1 is not this process's child.
  std::ifstream f(state.value("statusFile", ""));
  std::string line;
  if (f && std::getline(f, line)) {
    hull::ExitInfo info = hull::ExitInfo::FromJson(Json::parse(line, nullptr, false));
    if (info.signal) {
      result.signal = info.signal;
      result.exit_code.reset();
    } else if (info.exit_code) {
      result.exit_code = info.exit_code;
      result.signal.reset();
    }
    if (!info.exec_error.empty()) result.message = "the workload could not be started: " + info.exec_error;
  }
  // A bridge container's address and host veth go back now, not only at delete: its PID 1 is
  // gone (reaped just before). The record and the cgroup stay for ReleaseTask (the caller reads
  // the group's OOM count after this).
  if (const std::string name = state.value("name", ""); !name.empty()) {
    hull::StateDir dir(state.value("stateDir", dir_.root()));
    if (auto s = dir.Load(name); s && !s->ip.empty() && s->pid == state.value("pid", 0) && !hull::InitAlive(*s)) {
      hull::ReleaseNetwork(dir, *s);
    }
  }
  if (result.signal == SIGSYS) {
    // Killed by its seccomp profile: which call, from the kernel's audit record.
    if (auto kill = hull::AwaitSeccompKill(state.value("auditSession", int64_t{0}),
                                           state.value("workloadPid", 0), kSeccompRecordWait)) {
      result.message = "seccomp profile " + state.value("profile", std::string("default")) +
                       " blocked " + (kill->name.empty() ? "syscall" : kill->name) + " (" +
                       std::to_string(kill->syscall) + ")";
    }
  }
}

Status HullDriver::ReleaseTask(const std::string& id, const Json& state) {
  const std::string name = state.value("name", "");
  if (name.empty()) return {};
  hull::StateDir dir(state.value("stateDir", dir_.root()));
  // Recorded as exited first (the cgroup is already gone), then the record goes.
  if (auto s = dir.Load(name); s && s->pid == state.value("pid", 0)) {
    if (hull::InitAlive(*s)) return FailedPrecondition(P() + "task " + id + ": container " + name + " still runs");
    hull::Refresh(dir, *s);
    std::error_code ec;
    fs::remove_all(dir.ContainerDir(name), ec);
    if (ec) return Internal(P() + "task " + id + ": removing " + dir.ContainerDir(name) + ": " + ec.message());
  }
  return {};
}

Result<ExecSessionPtr> HullDriver::Exec(const std::string& id, const ExecOptions& options,
                                        ExecCallbacks callbacks) {
  auto prepare = [this, &id](const ProcessSupervisor::ExecTarget& target,
                             ProcessContext& context) -> Result<std::function<int()>> {
    const int ns_flags = NamespacesToJoin(target.pid);
    if (ns_flags == 0) return NotFound(P() + "task " + id + " is not running");
    // The workload's profile, built here: the child may only make system calls.
    MT_ASSIGN_OR_RETURN(SeccompProgram seccomp,
                        hull::BuildProfile(target.state->value("profile", std::string("default"))));
    EnterTaskRoot(target, context);
    return EnterConfinedTask(target.pidfd, ns_flags, &landlock_, caps_.get(),
                             std::make_shared<const SeccompProgram>(std::move(seccomp)));
  };
  return supervisor_->Exec(id, options, std::move(callbacks), prepare);
}

// hull containers (seed 003), recorded in a hull state directory of the agent's own: `hull ps`
// with HULL_STATE_DIR set to it lists them.
MENTAT_REGISTER_DRIVER(hull, {
  .name = "hull",
  .root = WorkloadRoot::kRootfs,
  .make = [](const DriverContext& context) -> Result<DriverPtr> {
    HullDriverOptions o;
    o.process.core_mhz = context.core_mhz;
    o.process.cgroup_parent = "hull";
    o.init_path = context.sandbox_init;
    o.state_dir = context.hull_state_dir.empty() ? context.data_dir + "/hull/state"
                                                 : context.hull_state_dir;
    return CreateDriver<HullDriver>(std::move(o));
  },
  .probe = [](const DriverContext& context) -> Status {
    if (::geteuid() != 0) {
      return FailedPrecondition("hull: the agent is not running as root (hull's namespaces, "
                                "mounts and cgroups need it)");
    }
    const std::string init = context.sandbox_init.empty() ? FindSandboxInit() : context.sandbox_init;
    if (init.empty() || ::access(init.c_str(), X_OK) != 0) {
      return FailedPrecondition("hull: sandbox-init was not found");
    }
    if (auto st = CgroupHost::Probe()->UsableForTracking(); !st) {
      return FailedPrecondition("hull: cgroups are not usable: " + st.error().message());
    }
    return {};
  },
});

}  // namespace mentat
