#include "runtimes/exec/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

namespace mentat {
namespace {

int PidfdOpen(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

// The task's log files, for a workload without a relay to write itself (close-on-exec, to be
// dup'ed onto 1 and 2).
Status OpenLogFiles(const std::string& task_dir, int* out_fd, int* err_fd) {
  const std::string out_path = task_dir + "/stdout.log", err_path = task_dir + "/stderr.log";
  *out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (*out_fd < 0) return ErrnoError("exec: opening " + out_path, errno);
  *err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (*err_fd < 0) {
    int e = errno;
    ::close(*out_fd);
    return ErrnoError("exec: opening " + err_path, e);
  }
  return {};
}

}  // namespace

Result<CgroupLimits> LimitsFromSpec(const Json& spec, int64_t core_mhz) {
  CgroupLimits limits;
  if (!spec.is_object() || !spec.contains("resources") || !spec["resources"].is_object()) {
    return limits;
  }
  const Json& res = spec["resources"];
  auto field = [&](const char* key) -> std::optional<int64_t> {
    if (!res.contains(key) || !res[key].is_number_integer()) return std::nullopt;
    return res[key].get<int64_t>();
  };
  if (auto mb = field("memory_mb")) limits.memory_bytes = *mb << 20;
  if (auto pct = field("cpu_percent")) {
    limits.cpu_percent = *pct;
  } else if (auto mhz = field("cpu_mhz")) {
    if (core_mhz <= 0) {
      return FailedPrecondition("resources.cpu_mhz: cannot enforce: this host's MHz per core is "
                                "unknown; give cpu (a share of a core) instead");
    }
    limits.cpu_percent = std::max<int64_t>(1, (*mhz * 100 + core_mhz - 1) / core_mhz);
  }
  if (auto pids = field("pids")) limits.pids_max = *pids;
  return limits;
}

std::optional<uint64_t> ProcessStartTicks(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return std::nullopt;
  // comm (field 2) may hold spaces and parens: fields resume after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  // Field 3 is the first after ')'; starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  // A zombie has exited: it is not a running task.
  std::string state = stat.substr(close + 2, 1);
  if (state == "Z" || state == "X") return std::nullopt;
  return std::stoull(field);
}

ProcessSupervisor::ProcessSupervisor(std::string driver, SupervisorOptions options,
                                     SupervisorPolicy policy)
    : driver_(std::move(driver)), opts_(std::move(options)), policy_(std::move(policy)) {}

Result<std::unique_ptr<ProcessSupervisor>> ProcessSupervisor::Create(std::string driver,
                                                                     SupervisorOptions options,
                                                                     SupervisorPolicy policy) {
  std::unique_ptr<ProcessSupervisor> s(
      new ProcessSupervisor(std::move(driver), std::move(options), std::move(policy)));
  MT_RETURN_IF_ERROR(s->Init());
  return s;
}

Status ProcessSupervisor::Init() {
  if (!opts_.cgroups) opts_.cgroups = CgroupHost::Probe();
  CgroupHost& cg = *opts_.cgroups;
  if (auto st = cg.UsableForTracking(); !st) {
    cgroups_unusable_ = st.error().message();
    spdlog::warn("{}: cgroups are not usable ({}): tasks run without limits and stop by "
                 "process group only; a task that asks for resources fails to start",
                 driver_, cgroups_unusable_);
  } else {
    for (auto c : {CgroupController::kMemory, CgroupController::kCpu, CgroupController::kPids}) {
      if (auto u = cg.Usable(c); !u) {
        spdlog::warn("{}: cgroup {} limits cannot be enforced ({}); tasks asking for them fail "
                     "to start",
                     driver_, ControllerName(c), u.error().message());
      }
    }
    spdlog::info("{}: tasks run in cgroup {} groups under {}", driver_, cg.Version(),
                 opts_.cgroup_parent);
  }
  if (opts_.log_relay.empty()) opts_.log_relay = FindLogRelay();
  if (opts_.log_relay.empty()) {
    spdlog::warn("{}: no log-relay binary (next to this one, $MENTAT_LOG_RELAY or "
                 "/usr/lib/mentat): tasks write their log files themselves and stdout and stderr "
                 "merge only to within a second", driver_);
  }
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return ErrnoError("epoll_create1", errno);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return ErrnoError("eventfd", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  reaper_ = std::thread([this] { ReaperLoop(); });
  return {};
}

ProcessSupervisor::~ProcessSupervisor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  if (wake_fd_ >= 0 && ::write(wake_fd_, &one, sizeof(one)) < 0) {
  }
  if (reaper_.joinable()) reaper_.join();
  // Tasks keep running: the driver going away (agent restart) must not stop workloads.
  for (auto& [id, t] : tasks_) {
    if (t.pidfd >= 0) ::close(t.pidfd);
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epfd_ >= 0) ::close(epfd_);
}

void ProcessSupervisor::SetExitHandler(Driver::ExitHandler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  on_exit_ = std::move(handler);
}

Json ProcessSupervisor::Fingerprint() {
  Json cgroups = opts_.cgroups->Describe();
  std::string detail = "host processes";
  if (!cgroups_unusable_.empty()) {
    cgroups["usable"] = false;
    cgroups["reason"] = cgroups_unusable_;
    detail += ", without cgroups (no limits): " + cgroups_unusable_;
  } else {
    cgroups["usable"] = true;
    detail += ", limits through cgroup " + opts_.cgroups->Version();
  }
  return {{"healthy", true}, {"detail", detail}, {"cgroups", cgroups}};
}

int ProcessSupervisor::SweepEmptyGroups(std::chrono::seconds min_age) {
  if (!cgroups_unusable_.empty()) return 0;
  auto children = opts_.cgroups->Children(opts_.cgroup_parent);
  if (!children) return 0;
  std::set<std::string> owned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, t] : tasks_) {
      if (t.cgroup) owned.insert(t.cgroup->path());
    }
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  int removed = 0;
  for (const auto& child : *children) {
    if (owned.count(child.path) || now - child.mtime_unix < min_age.count()) continue;
    auto group = opts_.cgroups->Open(child.path);
    if (!group) continue;
    auto members = (*group)->Pids();
    if (!members || !members->empty()) continue;  // running: the orphan sweep's business
    if ((*group)->Destroy()) ++removed;
  }
  if (removed > 0) spdlog::info("{}: removed {} empty cgroup(s) left under {}", driver_, removed, opts_.cgroup_parent);
  return removed;
}

Result<TaskLogs> ProcessSupervisor::Logs(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound(P() + "no task " + id);
  std::string dir = it->second.state.value("taskDir", "");
  return TaskLogs{dir + "/stdout.log", dir + "/stderr.log", HasLogRelay(it->second.state)};
}

Json ProcessSupervisor::PreviousState(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  return it == tasks_.end() ? Json::object() : it->second.state;
}

bool ProcessSupervisor::Running(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  return it != tasks_.end() && !it->second.exit;
}

std::optional<LogRelay> ProcessSupervisor::StartRelay(const TaskConfig& config) {
  // The last run's relay exits once it has drained the pipes; only a daemon of that run that
  // escaped its cgroup keeps it: killed then.
  StopLogRelay(PreviousState(config.id), std::chrono::seconds(2));
  if (opts_.log_relay.empty()) return std::nullopt;
  auto relay = StartLogRelay(opts_.log_relay, config.task_dir, config.log_limits);
  if (!relay) {
    spdlog::warn("{}: task {}: {}; it writes its log files itself", driver_, config.id,
                 relay.error().message());
    return std::nullopt;
  }
  return *relay;
}

void ProcessSupervisor::ReleaseCgroup(const std::string& id, Cgroup* group) {
  if (!group) return;
  if (auto st = group->KillAll(); !st) {
    spdlog::warn("exec: task {}: {}", id, st.error().message());
  }
  if (auto st = group->Destroy(); !st) {
    spdlog::warn("exec: task {}: {}", id, st.error().message());
  }
}

Status ProcessSupervisor::CheckEnforceable(const Json& spec, const CgroupLimits& limits) {
  const Json res = spec.is_object() ? spec.value("resources", Json::object()) : Json::object();
  auto enforceable = [&](bool wanted, CgroupController c, const std::string& field) -> Status {
    if (!wanted) return {};
    Status st = cgroups_unusable_.empty() ? opts_.cgroups->Usable(c)
                                          : Status(FailedPrecondition(cgroups_unusable_));
    if (!st) return FailedPrecondition(field + ": cannot enforce: " + st.error().message());
    return {};
  };
  MT_RETURN_IF_ERROR(enforceable(limits.memory_bytes.has_value(), CgroupController::kMemory,
                                 "resources.memory_mb"));
  MT_RETURN_IF_ERROR(enforceable(limits.cpu_percent.has_value(), CgroupController::kCpu,
                                 res.contains("cpu_percent") ? "resources.cpu_percent"
                                                             : "resources.cpu_mhz"));
  return enforceable(limits.pids_max.has_value(), CgroupController::kPids, "resources.pids");
}

Result<TaskHandle> ProcessSupervisor::Start(const TaskConfig& config, const SpawnFn& spawn) {
  if (config.command.empty()) return InvalidArgument(P() + "command is required");
  MT_ASSIGN_OR_RETURN(CgroupLimits limits, LimitsFromSpec(config.spec, opts_.core_mhz));
  MT_RETURN_IF_ERROR(CheckEnforceable(config.spec, limits));
  std::shared_ptr<Cgroup> previous;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(config.id);
    if (it != tasks_.end() && !it->second.exit) {
      return MakeError(Code::kAlreadyExists, P() + "task " + config.id + " is already running");
    }
    if (it != tasks_.end()) previous = std::move(it->second.cgroup);
  }
  // A restart: the last run's group goes before the new one is made.
  ReleaseCgroup(config.id, previous.get());
  std::error_code ec;
  std::filesystem::create_directories(config.task_dir, ec);
  if (ec) return Internal(P() + "creating " + config.task_dir + ": " + ec.message());

  // The output goes through the task's log relay, or straight into the files.
  std::optional<LogRelay> relay = StartRelay(config);
  SpawnIO io;
  if (relay) {
    io.out_fd = relay->out_fd;
    io.err_fd = relay->err_fd;
  } else {
    MT_RETURN_IF_ERROR(OpenLogFiles(config.task_dir, &io.out_fd, &io.err_fd));
  }
  io.null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  // The task's own group: a fresh name per run, so a restart never meets its predecessor's.
  std::shared_ptr<Cgroup> group;
  std::vector<int> join_fds;
  auto close_io = [&] {
    ::close(io.out_fd);
    ::close(io.err_fd);
    ::close(io.null_fd);
    CloseAll(join_fds);
  };
  if (cgroups_unusable_.empty()) {
    auto g = opts_.cgroups->Create(
        opts_.cgroup_parent + "/" + config.id + "-" + NewUid().substr(0, 8), limits);
    if (!g) {
      close_io();
      return std::unexpected(Error(g.error().code(), P() + "making the cgroup of " + config.id +
                                                        ": " + g.error().message()));
    }
    group = std::move(*g);
    auto fds = group->OpenProcsFiles();
    if (!fds) {
      close_io();
      ReleaseCgroup(config.id, group.get());
      return std::unexpected(fds.error());
    }
    join_fds = std::move(*fds);
  }
  io.join_fds = &join_fds;
  auto spawned = spawn(io);
  close_io();
  if (!spawned) {
    ReleaseCgroup(config.id, group.get());
    return std::unexpected(spawned.error());
  }
  const pid_t pid = spawned->pid;

  Task task;
  task.pid = pid;
  task.start_ticks = ProcessStartTicks(pid).value_or(0);
  task.started_at = NowRfc3339();
  task.pidfd = PidfdOpen(pid);
  if (task.pidfd < 0) {
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ReleaseCgroup(config.id, group.get());
    return ErrnoError(P() + "pidfd_open", e);
  }
  TaskHandle handle;
  handle.driver = driver_;
  handle.id = config.id;
  handle.state = spawned->state;
  handle.state.update(Json{{"pid", pid},
                           {"startTicks", task.start_ticks},
                           {"startedAt", task.started_at},
                           {"taskDir", config.task_dir}});
  if (group) handle.state["cgroup"] = group->path();
  if (relay) RecordLogRelay(*relay, handle.state);
  if (limits.memory_bytes) handle.state["memoryLimitBytes"] = *limits.memory_bytes;
  task.cgroup = group;
  task.memory_limit_bytes = limits.memory_bytes;
  task.state = handle.state;
  MT_RETURN_IF_ERROR(Track(config.id, std::move(task)));
  if (group) {
    spdlog::debug("{}: started {} as pid {} in cgroup {}", driver_, config.id, pid, group->path());
  } else {
    spdlog::info("{}: started {} as pid {} without a cgroup ({})", driver_, config.id, pid,
                 cgroups_unusable_);
  }
  return handle;
}

Result<ProcessSupervisor::Task> ProcessSupervisor::Pin(const TaskHandle& handle, bool verify) {
  const int pid = handle.state.value("pid", 0);
  const uint64_t want = handle.state.value("startTicks", uint64_t{0});
  Task task;
  task.pid = pid;
  task.state = handle.state;
  task.start_ticks = want;
  task.started_at = handle.state.value("startedAt", "");
  // Open the pidfd first, then check identity: after that the pid cannot be recycled under us.
  // A task that ended while no agent watched it: its group is removed when empty. Members are
  // never killed on a handle's word alone (a stale or copied handle must not kill anything).
  auto release_stale = [&] {
    if (!verify || !handle.state.contains("cgroup") || !handle.state["cgroup"].is_string()) return;
    auto g = opts_.cgroups->Open(handle.state["cgroup"].get<std::string>());
    if (!g) return;
    auto members = (*g)->Pids();
    if (members && members->empty()) {
      (*g)->Destroy();
    } else if (members) {
      spdlog::warn("{}: task {} is gone but its cgroup {} still has {} member(s); left as is", driver_,
                   handle.id, (*g)->path(), members->size());
    }
  };
  task.pidfd = PidfdOpen(pid);
  if (task.pidfd < 0) {
    release_stale();
    return NotFound(P() + "task " + handle.id + " (pid " + std::to_string(pid) + ") is gone");
  }
  auto ticks = verify ? ProcessStartTicks(pid) : std::optional<uint64_t>(want);
  if (!ticks || *ticks != want) {
    ::close(task.pidfd);
    release_stale();
    return NotFound(P() + "task " + handle.id + " (pid " + std::to_string(pid) + ") is gone" +
                    (ticks ? "; the pid now belongs to another process" : ""));
  }
  if (handle.state.contains("cgroup") && handle.state["cgroup"].is_string()) {
    std::string path = handle.state["cgroup"].get<std::string>();
    auto g = opts_.cgroups->Open(path);
    if (g) {
      task.cgroup = std::move(*g);
    } else if (verify) {
      // Still running, so still adopted; but Stop can then only reach its process group.
      spdlog::warn("{}: recovering {}: its cgroup {} cannot be re-opened: {}", driver_, handle.id, path,
                   g.error().message());
    }
  }
  if (handle.state.contains("memoryLimitBytes")) {
    task.memory_limit_bytes = handle.state["memoryLimitBytes"].get<int64_t>();
  }
  return task;
}

Status ProcessSupervisor::Adopt(const TaskHandle& handle) {
  MT_ASSIGN_OR_RETURN(Task task, Pin(handle, /*verify=*/false));
  return Track(handle.id, std::move(task));
}

Status ProcessSupervisor::Recover(const TaskHandle& handle) {
  if (handle.driver != driver_) return InvalidArgument(P() + "handle belongs to " + handle.driver);
  if (handle.state.value("pid", 0) <= 0) return InvalidArgument(P() + "handle has no pid");
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(handle.id);
    if (it != tasks_.end() && !it->second.exit) return {};  // already attached
  }
  MT_ASSIGN_OR_RETURN(Task task, Pin(handle, /*verify=*/true));
  return Track(handle.id, std::move(task));
}

Status ProcessSupervisor::Track(const std::string& id, Task task) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it != tasks_.end() && it->second.pidfd >= 0) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
    ::close(it->second.pidfd);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = task.pidfd;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, task.pidfd, &ev) != 0) {
    int e = errno;
    ::close(task.pidfd);
    return ErrnoError(P() + "epoll_ctl", e);
  }
  tasks_[id] = std::move(task);
  return {};
}

}  // namespace mentat
