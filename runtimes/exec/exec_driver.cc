#include "runtimes/exec/exec_driver.h"

#include "runtimes/exec/exec_session.h"

#include <fcntl.h>
#include <pwd.h>
#include <grp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
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

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

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

constexpr char kDefaultTaskPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

// The spec's resolved security profile (the agent attaches it) says run_as_non_root: true.
static bool RequiresNonRoot(const Json& spec) {
  if (!spec.is_object() || !spec.contains("security") || !spec["security"].is_object()) return false;
  const Json& resolved = spec["security"].value("resolved", Json::object());
  return resolved.is_object() && resolved.value("run_as_non_root", Json(false)) == true;
}

Result<TaskUser> ResolveTaskUser(const std::string& spec) {
  TaskUser u;
  std::string user = spec.substr(0, spec.find(':'));
  std::string group = spec.find(':') == std::string::npos ? "" : spec.substr(spec.find(':') + 1);
  auto numeric = [](const std::string& v) {
    return !v.empty() && v.size() <= 10 && v.find_first_not_of("0123456789") == std::string::npos;
  };
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (numeric(user)) {
    u.uid = static_cast<uid_t>(std::stoul(user));
    ::getpwuid_r(u.uid, &pw, buf.data(), buf.size(), &found);
    u.gid = found ? found->pw_gid : static_cast<gid_t>(u.uid);
  } else {
    ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (!found) return InvalidArgument("user: there is no user \"" + user + "\" on this node");
    u.uid = found->pw_uid;
    u.gid = found->pw_gid;
  }
  std::string name = found ? found->pw_name : "";
  if (!group.empty()) {
    if (numeric(group)) {
      u.gid = static_cast<gid_t>(std::stoul(group));
    } else {
      struct group gr {};
      struct group* g = nullptr;
      std::vector<char> gbuf(16384);
      ::getgrnam_r(group.c_str(), &gr, gbuf.data(), gbuf.size(), &g);
      if (!g) return InvalidArgument("user: there is no group \"" + group + "\" on this node");
      u.gid = g->gr_gid;
    }
  }
  // Supplementary groups: the user's own, as login would give them.
  u.groups = {u.gid};
  if (!name.empty()) {
    int n = 64;
    std::vector<gid_t> groups(n);
    if (::getgrouplist(name.c_str(), u.gid, groups.data(), &n) < 0) {
      groups.resize(n);
      ::getgrouplist(name.c_str(), u.gid, groups.data(), &n);
    }
    groups.resize(std::max(n, 0));
    u.groups = groups;
  }
  return u;
}

std::vector<std::string> EnvStrings(const std::vector<EnvVar>& env) {
  std::vector<std::string> out;
  bool has_path = false;
  for (const auto& e : env) {
    out.push_back(e.name + "=" + e.value);
    has_path |= e.name == "PATH";
  }
  if (!has_path) out.push_back(std::string("PATH=") + kDefaultTaskPath);
  return out;
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

Result<std::unique_ptr<ExecDriver>> ExecDriver::Create(ExecDriverOptions options) {
  std::unique_ptr<ExecDriver> d(new ExecDriver(std::move(options)));
  MT_RETURN_IF_ERROR(d->Init());
  return d;
}

Status ExecDriver::Init() {
  if (!opts_.cgroups) opts_.cgroups = CgroupHost::Probe();
  CgroupHost& cg = *opts_.cgroups;
  if (auto st = cg.UsableForTracking(); !st) {
    cgroups_unusable_ = st.error().message();
    spdlog::warn("{}: cgroups are not usable ({}): tasks run without limits and stop by "
                 "process group only; a task that asks for resources fails to start",
                 Name(), cgroups_unusable_);
  } else {
    for (auto c : {CgroupController::kMemory, CgroupController::kCpu, CgroupController::kPids}) {
      if (auto u = cg.Usable(c); !u) {
        spdlog::warn("{}: cgroup {} limits cannot be enforced ({}); tasks asking for them fail "
                     "to start",
                     Name(), ControllerName(c), u.error().message());
      }
    }
    spdlog::info("{}: tasks run in cgroup {} groups under {}", Name(), cg.Version(),
                 opts_.cgroup_parent);
  }
  if (opts_.log_relay.empty()) opts_.log_relay = FindLogRelay();
  if (opts_.log_relay.empty()) {
    spdlog::warn("{}: no log-relay binary (next to this one, $MENTAT_LOG_RELAY or "
                 "/usr/lib/mentat): tasks write their log files themselves and stdout and stderr "
                 "merge only to within a second", Name());
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

void ExecDriver::StopReaper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  if (wake_fd_ >= 0 && ::write(wake_fd_, &one, sizeof(one)) < 0) {
  }
  if (reaper_.joinable()) reaper_.join();
}

ExecDriver::~ExecDriver() {
  StopReaper();
  // Tasks keep running: the driver going away (agent restart) must not stop workloads.
  for (auto& [id, t] : tasks_) {
    if (t.pidfd >= 0) ::close(t.pidfd);
  }
  ::close(wake_fd_);
  ::close(epfd_);
}

void ExecDriver::SetExitHandler(ExitHandler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  on_exit_ = std::move(handler);
}

Json ExecDriver::Fingerprint() {
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

int ExecDriver::SweepEmptyGroups(std::chrono::seconds min_age) {
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
  if (removed > 0) spdlog::info("{}: removed {} empty cgroup(s) left under {}", Name(), removed, opts_.cgroup_parent);
  return removed;
}

Json ExecDriver::Capabilities() const {
  return {{"exec", true}, {"signal", true}, {"recover", true}, {"isolation", "none"},
          {"limits", Json::array({"memory", "cpu", "pids"})}};
}

Result<TaskLogs> ExecDriver::Logs(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound(P() + "no task " + id);
  std::string dir = it->second.state.value("taskDir", "");
  return TaskLogs{dir + "/stdout.log", dir + "/stderr.log", HasLogRelay(it->second.state)};
}

Json ExecDriver::PreviousState(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  return it == tasks_.end() ? Json::object() : it->second.state;
}

std::optional<LogRelay> ExecDriver::StartRelay(const TaskConfig& config, const Json& previous_state) {
  // The last run's relay exits once it has drained the pipes; only a daemon of that run that
  // escaped its cgroup keeps it: killed then.
  StopLogRelay(previous_state, std::chrono::seconds(2));
  if (opts_.log_relay.empty()) return std::nullopt;
  auto relay = StartLogRelay(opts_.log_relay, config.task_dir, config.log_limits);
  if (!relay) {
    spdlog::warn("{}: task {}: {}; it writes its log files itself", Name(), config.id,
                 relay.error().message());
    return std::nullopt;
  }
  return *relay;
}

void ExecDriver::ReleaseCgroup(const std::string& id, Cgroup* group) {
  if (!group) return;
  if (auto st = group->KillAll(); !st) {
    spdlog::warn("exec: task {}: {}", id, st.error().message());
  }
  if (auto st = group->Destroy(); !st) {
    spdlog::warn("exec: task {}: {}", id, st.error().message());
  }
}

Result<TaskHandle> ExecDriver::Start(const TaskConfig& config) {
  if (config.command.empty()) return InvalidArgument(P() + "command is required");
  MT_ASSIGN_OR_RETURN(CgroupLimits limits, LimitsFromSpec(config.spec, opts_.core_mhz));
  // Limits that were asked for are enforced, or the task does not start: never silently.
  const Json res = config.spec.is_object() ? config.spec.value("resources", Json::object())
                                           : Json::object();
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
  MT_RETURN_IF_ERROR(
      enforceable(limits.pids_max.has_value(), CgroupController::kPids, "resources.pids"));
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
  std::optional<LogRelay> relay = StartRelay(config, PreviousState(config.id));
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
  auto spawned = Spawn(config, io);
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
  handle.driver = Name();
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
    spdlog::debug("{}: started {} as pid {} in cgroup {}", Name(), config.id, pid, group->path());
  } else {
    spdlog::info("{}: started {} as pid {} without a cgroup ({})", Name(), config.id, pid,
                 cgroups_unusable_);
  }
  return handle;
}

Result<ExecDriver::Spawned> ExecDriver::Spawn(const TaskConfig& config, const SpawnIO& io) {
  if (!config.cwd.empty()) {
    struct stat st;
    if (::stat(config.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return InvalidArgument(P() + "cwd " + config.cwd + " is not a directory on this node");
    }
  }
  // Everything the child needs is built before fork: the user too (getpwnam is not
  // async-signal-safe).
  std::optional<TaskUser> user;
  if (config.spec.is_object() && config.spec.contains("user") && config.spec["user"].is_string()) {
    MT_ASSIGN_OR_RETURN(user, ResolveTaskUser(config.spec["user"].get<std::string>()));
  }
  // Admission refused root by name; a name that is uid 0 on this node is refused here.
  if (RequiresNonRoot(config.spec) && (!user || user->uid == 0)) {
    return InvalidArgument(P() + "user: its security profile runs tasks as a non-root user, and " +
                           (user ? config.spec["user"].get<std::string>() + " is uid 0 on this node"
                                 : std::string("none is given")));
  }
  std::string path_env;
  for (const auto& e : config.env) {
    if (e.name == "PATH") path_env = e.value;
  }
  std::string path = ResolveOnPath(config.command, path_env);
  std::vector<std::string> argv_s = {config.command};
  argv_s.insert(argv_s.end(), config.args.begin(), config.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = EnvStrings(config.env);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) return ErrnoError(P() + "pipe2", errno);
  const char* cwd = config.cwd.empty() ? nullptr : config.cwd.c_str();
  const std::vector<int>& join_fds = *io.join_fds;
  const int out_fd = io.out_fd, err_fd = io.err_fd, null_fd = io.null_fd;

  pid_t pid = ::fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    // First the cgroup: whatever the workload forks from here on is inside it. A failure is
    // reported as a negative errno, apart from exec's own.
    if (int e = JoinCgroupInChild(join_fds); e != 0) {
      int neg = -e;
      ssize_t w = ::write(errpipe[1], &neg, sizeof(neg));
      (void)w;
      _exit(127);
    }
    ::setsid();  // own session and process group: signals reach the whole group
    ResetSignalsInChild();
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    // Nothing of the agent (listening sockets, the store) may leak into the workload.
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    int err = 0;
    // Groups and gid before uid: after setuid there is no right left to change them. Then the
    // directory, entered as that user.
    if (user && (::setgroups(user->groups.size(), user->groups.data()) != 0 ||
                 ::setgid(user->gid) != 0 || ::setuid(user->uid) != 0)) {
      err = errno;
    } else if (cwd && ::chdir(cwd) != 0) {
      err = errno;
    } else {
      ::execve(path.c_str(), argv.data(), envp.data());
      err = errno;
    }
    ssize_t w = ::write(errpipe[1], &err, sizeof(err));
    (void)w;
    _exit(127);
  }
  int fork_errno = errno;
  ::close(errpipe[1]);
  if (pid < 0) {
    ::close(errpipe[0]);
    return ErrnoError(P() + "fork", fork_errno);
  }
  if (int child_err = ChildExecError(errpipe[0], pid); child_err != 0) {
    if (child_err < 0) return Internal(P() + "joining the task's cgroup: " + std::strerror(-child_err));
    return MakeError(child_err == ENOENT ? Code::kInvalidArgument : Code::kInternal,
                     P() + "cannot run " + config.command +
                         (cwd ? " in " + config.cwd : std::string()) + ": " +
                         std::strerror(child_err));
  }
  return Spawned{pid, Json::object()};
}

Status ExecDriver::Recover(const TaskHandle& handle) {
  if (handle.driver != Name()) return InvalidArgument(P() + "handle belongs to " + handle.driver);
  int pid = handle.state.value("pid", 0);
  uint64_t want = handle.state.value("startTicks", uint64_t{0});
  if (pid <= 0) return InvalidArgument(P() + "handle has no pid");
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(handle.id);
    if (it != tasks_.end() && !it->second.exit) return {};  // already attached
  }
  Task task;
  task.pid = pid;
  task.state = handle.state;
  task.start_ticks = want;
  task.started_at = handle.state.value("startedAt", "");
  // Open the pidfd first, then check identity: after that the pid cannot be recycled under us.
  // A task that ended while no agent watched it: its group is removed when empty. Members are
  // never killed on a handle's word alone (a stale or copied handle must not kill anything).
  auto release_stale = [&] {
    if (!handle.state.contains("cgroup") || !handle.state["cgroup"].is_string()) return;
    auto g = opts_.cgroups->Open(handle.state["cgroup"].get<std::string>());
    if (!g) return;
    auto members = (*g)->Pids();
    if (members && members->empty()) {
      (*g)->Destroy();
    } else if (members) {
      spdlog::warn("{}: task {} is gone but its cgroup {} still has {} member(s); left as is", Name(),
                   handle.id, (*g)->path(), members->size());
    }
  };
  task.pidfd = PidfdOpen(pid);
  if (task.pidfd < 0) {
    release_stale();
    return NotFound(P() + "task " + handle.id + " (pid " + std::to_string(pid) + ") is gone");
  }
  auto ticks = ProcessStartTicks(pid);
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
    } else {
      // Still running, so still adopted; but Stop can then only reach its process group.
      spdlog::warn("{}: recovering {}: its cgroup {} cannot be re-opened: {}", Name(), handle.id, path,
                   g.error().message());
    }
  }
  if (handle.state.contains("memoryLimitBytes")) {
    task.memory_limit_bytes = handle.state["memoryLimitBytes"].get<int64_t>();
  }
  return Track(handle.id, std::move(task));
}

Status ExecDriver::Track(const std::string& id, Task task) {
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

void ExecDriver::ReaperLoop() {
  epoll_event events[64];
  while (true) {
    int n = epoll_wait(epfd_, events, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wake_fd_) continue;
      OnPidfdReadable(events[i].data.fd);
    }
  }
}

void ExecDriver::OnPidfdReadable(int pidfd) {
  ExitResult result;
  siginfo_t info{};
  // Our own child: reap it and learn how it ended. A recovered task is not our child (ECHILD):
  // the kernel keeps its status for its real parent, so the code is unknown.
  errno = 0;
  int rc = waitid(static_cast<idtype_t>(3) /*P_PIDFD*/, pidfd, &info, WEXITED | WNOHANG);
  if (rc == 0 && info.si_pid == 0) return;  // our child, still running: spurious wake-up
  if (rc == 0) {
    if (info.si_code == CLD_EXITED) {
      result.exit_code = info.si_status;
    } else {
      result.signal = info.si_status;
    }
  } else {
    result.message = "exit status unknown: the task was recovered after an agent restart";
  }
  std::string refined;  // what the driver's RefineExit adds to the message
  Json state;             // the handle's state
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, t] : tasks_) {
      if (t.pidfd == pidfd) state = t.state;
    }
  }
  {
    std::string before = result.message;
    RefineExit(state, result);
    if (result.message != before) refined = result.message;
  }
  if (result.exit_code) {
    result.message = "exited with code " + std::to_string(*result.exit_code);
  } else if (result.signal) {
    result.message = std::string("killed by signal ") + strsignal(*result.signal);
  }
  if (!refined.empty()) result.message += ": " + refined;
  std::shared_ptr<Cgroup> group;
  std::optional<int64_t> memory_limit;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, t] : tasks_) {
      if (t.pidfd == pidfd) {
        group = t.cgroup;
        memory_limit = t.memory_limit_bytes;
        break;
      }
    }
  }
  if (group) {
    // The leader is gone: what it left running goes with it, as a container's processes go
    // with its init. Then the group's OOM counter says whether the kernel killed anything.
    if (auto st = group->KillAll(); !st) spdlog::warn("{}: {}", Name(), st.error().message());
    auto kills = group->OomKills();
    if (kills && *kills > 0) {
      result.oom_killed = true;
      result.message = "OOM-killed: exceeded its " +
                       (memory_limit ? std::to_string(*memory_limit >> 20) + " MiB " : "") +
                       "memory limit (" + result.message + ")";
    } else if (!kills) {
      spdlog::warn("{}: reading OOM kills of {}: {}", Name(), group->path(), kills.error().message());
    }
    if (auto stats = group->Stats(); stats && stats->pids_limit_hits > 0) {
      result.pids_limit_hits = stats->pids_limit_hits;
      result.message += "; its pids limit refused " + std::to_string(stats->pids_limit_hits) +
                        " fork(s)";
    }
  }
  // The exit is reported once the log relay has written the task's last words (as containerd's
  // shim waits for its IO): it exits when the pipes' writers are all gone, which the group's
  // kill above made sure of. A daemon outside any cgroup may hold them: not for long then.
  AwaitLogRelay(state, std::chrono::seconds(1));
  std::string id;
  ExitHandler handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, t] : tasks_) {
      if (t.pidfd == pidfd) {
        id = tid;
        epoll_ctl(epfd_, EPOLL_CTL_DEL, pidfd, nullptr);
        ::close(pidfd);
        t.pidfd = -1;
        t.exit = result;
        break;
      }
    }
    handler = on_exit_;
  }
  exited_cv_.notify_all();
  if (!id.empty() && handler) handler(id, result);
}

Result<std::optional<ExitResult>> ExecDriver::Wait(const std::string& id,
                                                   std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound(P() + "no task " + id);
  exited_cv_.wait_for(lock, timeout, [&] {
    auto t = tasks_.find(id);
    return t == tasks_.end() || t->second.exit.has_value();
  });
  auto t = tasks_.find(id);
  if (t == tasks_.end()) return NotFound(P() + "task " + id + " was destroyed");
  return t->second.exit;
}

Status ExecDriver::Signal(const std::string& id, int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound(P() + "no task " + id);
  if (it->second.exit) return FailedPrecondition(P() + "task " + id + " has exited");
  // The pidfd pins the identity of the leader; the group shares its pid as pgid.
  if (PidfdSendSignal(it->second.pidfd, 0) != 0) return NotFound(P() + "task " + id + " is gone");
  if (::kill(-it->second.pid, sig) != 0 && PidfdSendSignal(it->second.pidfd, sig) != 0) {
    return ErrnoError(P() + "signalling " + id, errno);
  }
  return {};
}

Status ExecDriver::Stop(const std::string& id, std::chrono::milliseconds grace, int sig) {
  auto st = Signal(id, sig);
  if (!st && st.error().code() != Code::kFailedPrecondition) return st;
  if (st) MT_RETURN_IF_ERROR(Wait(id, grace));
  // Whatever is left, the leader or what it left behind (even daemons that escaped its process
  // group and session), is killed.
  MT_RETURN_IF_ERROR(KillTree(id));
  MT_ASSIGN_OR_RETURN(auto killed, Wait(id, std::chrono::seconds(5)));
  if (!killed) {
    return Internal(P() + "task " + id + " (pid " +
                    std::to_string(Inspect(id).value_or(TaskStatus{}).pid) + ") survived SIGKILL");
  }
  return {};
}

Status ExecDriver::KillTree(const std::string& id) {
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    Task& t = it->second;
    group = t.cgroup;
    if (!t.exit) {
      // The pidfd pins the leader while it runs, and with it its process group's id.
      ::kill(-t.pid, SIGKILL);
      if (t.pidfd >= 0) PidfdSendSignal(t.pidfd, SIGKILL);
    } else if (!group) {
      // No cgroup to go by: stragglers of its process group, as well as can be done.
      ::kill(-t.pid, SIGKILL);
    }
  }
  if (group) return group->KillAll();
  return {};
}

Status ExecDriver::Destroy(const std::string& id, bool force) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    if (!it->second.exit && !force) {
      return FailedPrecondition(P() + "task " + id + " is still running");
    }
  }
  if (force) MT_RETURN_IF_ERROR(Stop(id, std::chrono::milliseconds(0), SIGKILL));
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    group = it->second.cgroup;
  }
  if (group) {
    // Kept track of until its group is gone, so that a failed removal is retried.
    MT_RETURN_IF_ERROR(group->KillAll());
    if (auto st = group->Destroy(); !st) {
      return MakeError(Code::kUnavailable, P() + "task " + id + ": " + st.error().message());
    }
  }
  {
    Json state = PreviousState(id);
    // Every writer of its pipes was in the group: the relay drains them and exits.
    StopLogRelay(state, std::chrono::seconds(2));
    MT_RETURN_IF_ERROR(ReleaseTask(id, state));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it != tasks_.end()) {
    if (it->second.pidfd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
      ::close(it->second.pidfd);
    }
    tasks_.erase(it);
  }
  return {};
}

Result<ExecSessionPtr> ExecDriver::Exec(const std::string& id, const ExecOptions& options,
                                        ExecCallbacks callbacks) {
  int pid = 0;
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.exit || it->second.pidfd < 0) {
      return NotFound(P() + "task " + id + " is not running");
    }
    pid = it->second.pid;
    group = it->second.cgroup;
  }
  // The task's context is read from the live process, so a recovered task (whose TaskConfig
  // is gone with the old agent) gets the same environment, directory and user as a fresh one.
  // The start time is checked after the read: a pid recycled meanwhile is not mistaken for it.
  auto context = ReadProcessContext(pid);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (!context || it == tasks_.end() || it->second.exit ||
        ProcessStartTicks(pid) != std::optional<uint64_t>(it->second.start_ticks)) {
      return NotFound(P() + "task " + id + " is not running");
    }
  }
  // The command joins the task's cgroup: its limits, its usage, and its fate on Stop.
  std::vector<int> join_fds;
  if (group) {
    MT_ASSIGN_OR_RETURN(join_fds, group->OpenProcsFiles());
  }
  auto session = StartExecSession(*context, options, std::move(callbacks), join_fds);
  CloseAll(join_fds);
  return session;
}

Result<TaskStats> ExecDriver::Stats(const std::string& id) {
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return NotFound(P() + "no task " + id);
    group = it->second.cgroup;
  }
  if (!group) {
    return FailedPrecondition(P() + "task " + id + " runs without a cgroup" +
                              (cgroups_unusable_.empty() ? "" : ": " + cgroups_unusable_));
  }
  MT_ASSIGN_OR_RETURN(CgroupStats cs, group->Stats());
  return TaskStats{cs.memory_bytes, cs.memory_peak_bytes, cs.cpu_usage_ns, cs.pids,
                   cs.pids_limit_hits};
}

Result<TaskStatus> ExecDriver::Inspect(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound(P() + "no task " + id);
  TaskStatus s;
  s.pid = it->second.pid;
  s.started_at = it->second.started_at;
  s.state = it->second.exit ? TaskState::kExited : TaskState::kRunning;
  s.exit = it->second.exit;
  return s;
}

}  // namespace mentat
