// The exec driver (seed 000): a trusted host process with command, args, env and cwd, in its
// own session and process group, stdout/stderr appended to files in the task directory.
// Exits are observed through pidfds in one epoll thread, so recovered tasks (no longer our
// children) are watched exactly like fresh ones. Each task runs in a cgroup of its own
// (<parent>/<task-id>-<8 hex>) that the child joins before exec: spec.resources become kernel
// limits, the whole tree (daemonized children too) is killed on stop, OOM kills are reported.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "runtimes/cgroups/cgroups.h"
#include "runtimes/driver.h"
#include "runtimes/exec/log_relay_process.h"

namespace mentat {

struct ExecDriverOptions {
  // The host's cgroups; null: CgroupHost::Probe(). When they cannot be used (no root), tasks
  // run without a cgroup, and a task that asks for limits fails to start, naming the field.
  CgroupHostPtr cgroups;
  // Where task groups are made, relative to each hierarchy's root.
  std::string cgroup_parent = "mentat";
  // MHz of one core, to turn resources.cpu_mhz into a quota; 0: unknown (cpu_mhz is refused).
  int64_t core_mhz = 0;
  // The log relay (cmd/log-relay) each task's output goes through; empty: FindLogRelay(). When
  // there is none, the workload writes its log files itself (said once in the log).
  std::string log_relay;
};

// spec.resources (memory_mb, cpu_percent or cpu_mhz, pids) as cgroup limits. Errors name the
// field, e.g. "resources.cpu_mhz: cannot enforce: this host's MHz per core is unknown".
Result<CgroupLimits> LimitsFromSpec(const Json& spec, int64_t core_mhz);

class ExecDriver : public Driver {
 public:
  static Result<std::unique_ptr<ExecDriver>> Create(ExecDriverOptions options = {});
  ~ExecDriver() override;

  std::string Name() const override { return "exec"; }
  Result<TaskHandle> Start(const TaskConfig& config) override;
  Status Recover(const TaskHandle& handle) override;
  Result<std::optional<ExitResult>> Wait(const std::string& id,
                                         std::chrono::milliseconds timeout) override;
  Status Stop(const std::string& id, std::chrono::milliseconds grace, int signal) override;
  Status Destroy(const std::string& id, bool force) override;
  Result<TaskStatus> Inspect(const std::string& id) override;
  Result<TaskStats> Stats(const std::string& id) override;
  Status Signal(const std::string& id, int signal) override;
  Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options,
                              ExecCallbacks callbacks) override;
  Json Fingerprint() override;
  Json Capabilities() const override;
  Result<TaskLogs> Logs(const std::string& id) override;
  void SetExitHandler(ExitHandler handler) override;

  // Removes the empty groups under this driver's cgroup parent that no task of it owns and
  // that are older than `min_age` (a group is made moments before its task joins it): what an
  // agent killed mid-way left behind. After Recover; returns how many went.
  int SweepEmptyGroups(std::chrono::seconds min_age);

 protected:
  // The hooks a driver whose task is also a host process tree overrides (the sandbox driver):
  // everything else (cgroups, exits through pidfds, Recover by pid and start time, Stop with
  // grace, Destroy, Stats) is this class's.
  explicit ExecDriver(ExecDriverOptions options) : opts_(std::move(options)) {}
  // Probes cgroups and starts the exit watcher; Create() calls it, and so must a subclass's
  // factory. A subclass's destructor calls StopReaper() first: the watcher calls its hooks.
  Status Init();
  void StopReaper();
  // What Start gives Spawn: the task's log files and /dev/null (close-on-exec, to be dup'ed
  // onto 0, 1 and 2), and the cgroup.procs files to join before anything else (may be empty).
  struct SpawnIO {
    int out_fd = -1, err_fd = -1, null_fd = -1;
    const std::vector<int>* join_fds = nullptr;
  };
  struct Spawned {
    pid_t pid = 0;
    Json state = Json::object();  // merged into the handle's state
  };
  // Makes the task's first process, returning once it has exec'd the workload (or failed,
  // with nothing left running). The default: a host process in a session of its own.
  virtual Result<Spawned> Spawn(const TaskConfig& config, const SpawnIO& io);
  // Called when a task's first process has exited, with its handle state, before the message
  // is written: a driver that knows more (the sandbox's init reports its workload's status)
  // corrects the exit code or signal; a message it sets is appended to the standard one.
  virtual void RefineExit(const Json& state, ExitResult& result) {}
  // Frees what a destroyed task held beyond its cgroup (the sandbox's writable layer).
  virtual Status ReleaseTask(const std::string& id, const Json& state) { return {}; }
  // "<name>: ", the prefix of every message.
  std::string P() const { return Name() + ": "; }
  // A new log relay for a run of `config` (log_relay_process.h), after the previous run's one
  // (`previous_state`, its handle state) is gone: one writer of the logs at a time. nullopt
  // when there is no relay binary, or it failed to start (said in the log): the workload then
  // writes the files itself.
  std::optional<LogRelay> StartRelay(const TaskConfig& config, const Json& previous_state);
  // The previous run's handle state of task `id`, empty when there was none.
  Json PreviousState(const std::string& id);

  struct Task {
    int pid = 0;
    int pidfd = -1;
    uint64_t start_ticks = 0;  // /proc/<pid>/stat field 22: with pid, the process identity
    std::string started_at;
    std::optional<ExitResult> exit;
    std::shared_ptr<Cgroup> cgroup;  // null when cgroups are not usable here
    std::optional<int64_t> memory_limit_bytes;
    Json state;  // the handle's state
  };

  void ReaperLoop();
  // SIGKILLs everything of the task: its cgroup, or (without one) its process group.
  Status KillTree(const std::string& id);
  // Kills what is left in a finished task's group and removes the group.
  static void ReleaseCgroup(const std::string& id, Cgroup* group);
  Status Track(const std::string& id, Task task);
  void OnPidfdReadable(int pidfd);

  int epfd_ = -1;
  int wake_fd_ = -1;
  ExecDriverOptions opts_;
  std::string cgroups_unusable_;  // why tasks run without a cgroup; empty when they have one
  std::thread reaper_;
  std::mutex mu_;
  std::condition_variable exited_cv_;
  std::map<std::string, Task> tasks_;
  ExitHandler on_exit_;
  bool stopping_ = false;
};

// spec.user ("name", "uid", "name:group", "uid:gid") as ids, with the user's supplementary
// groups. kInvalidArgument naming `user` when the node has no such user or group.
struct TaskUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};
Result<TaskUser> ResolveTaskUser(const std::string& spec);

// "NAME=VALUE" strings of `env`, with a default PATH when it has none.
std::vector<std::string> EnvStrings(const std::vector<EnvVar>& env);

// /proc/<pid>/stat start time in clock ticks since boot; nullopt when the pid does not exist.
std::optional<uint64_t> ProcessStartTicks(int pid);

}  // namespace mentat
