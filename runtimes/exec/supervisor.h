// The process supervisor: what every driver whose task is a host process tree needs (exec,
// sandbox, hull, a future VM monitor), held by each as a member rather than inherited. It makes
// the task's cgroup and log relay around a driver-supplied spawn, pins the first process with a
// pidfd, reports its exit from one epoll thread (recovered tasks, no longer our children, are
// watched exactly like fresh ones), stops with a grace period then kills the whole tree,
// recovers by pid and start time, and runs exec sessions in the task's context.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtimes/cgroups/cgroups.h"
#include "runtimes/driver.h"
#include "runtimes/exec/exec_session.h"
#include "runtimes/exec/log_relay_process.h"

namespace mentat {

struct SupervisorOptions {
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

// What a driver tells its supervisor about its tasks beyond the processes themselves.
struct SupervisorPolicy {
  // Where Signal (and Stop's first signal) goes: the task's process group, or its first process
  // alone (an init that forwards it: a group signal would reach the workload twice).
  enum class SignalTarget { kProcessGroup, kLeader };
  SignalTarget signal = SignalTarget::kProcessGroup;
  // Called when a task's first process has exited, with its handle state, before the message is
  // written: a driver that knows more (sandbox-init's report) corrects the exit code or signal;
  // a message it sets is appended to the standard one. From the supervisor's thread.
  std::function<void(const Json& state, ExitResult& result)> refine_exit;
  // Frees what a destroyed task held beyond its cgroup (the sandbox's writable layer).
  std::function<Status(const std::string& id, const Json& state)> release_task;
};

// spec.resources (memory_mb, cpu_percent or cpu_mhz, pids) as cgroup limits. Errors name the
// field, e.g. "resources.cpu_mhz: cannot enforce: this host's MHz per core is unknown".
Result<CgroupLimits> LimitsFromSpec(const Json& spec, int64_t core_mhz);

// /proc/<pid>/stat start time in clock ticks since boot; nullopt when the pid does not exist.
std::optional<uint64_t> ProcessStartTicks(int pid);

class ProcessSupervisor {
 public:
  // `driver` names the owner in every message ("exec: ..."). Probes cgroups, finds the log
  // relay and starts the exit watcher.
  static Result<std::unique_ptr<ProcessSupervisor>> Create(std::string driver,
                                                           SupervisorOptions options,
                                                           SupervisorPolicy policy = {});
  // Stops the exit watcher first, so no policy hook runs once destruction has begun: a driver
  // declares its supervisor last among its members. Tasks keep running (agent restarts).
  ~ProcessSupervisor();

  // What Start gives a spawn: the task's log files and /dev/null (close-on-exec, to be dup'ed
  // onto 0, 1 and 2), and the cgroup.procs files to join before anything else (may be empty).
  struct SpawnIO {
    int out_fd = -1, err_fd = -1, null_fd = -1;
    const std::vector<int>* join_fds = nullptr;
  };
  struct Spawned {
    pid_t pid = 0;
    Json state = Json::object();  // merged into the handle's state
  };
  // Makes the task's first process, returning once it has exec'd the workload (or failed, with
  // nothing left running).
  using SpawnFn = std::function<Result<Spawned>(const SpawnIO& io)>;

  // Starts `config`: its limits checked against what this host enforces, its log relay, a fresh
  // cgroup, then `spawn`, and the handle (pid, start time, cgroup, relay) once it is pinned.
  Result<TaskHandle> Start(const TaskConfig& config, const SpawnFn& spawn);
  // Tracks a process the driver started itself (hull's library): `handle.state` has pid,
  // startTicks, startedAt and, when it has one, cgroup and memoryLimitBytes. kNotFound when it
  // has already gone.
  Status Adopt(const TaskHandle& handle);
  // Re-attaches to a task of an earlier agent, by pid and start time (Driver::Recover).
  Status Recover(const TaskHandle& handle);

  Result<std::optional<ExitResult>> Wait(const std::string& id, std::chrono::milliseconds timeout);
  Status Signal(const std::string& id, int signal);
  Status Stop(const std::string& id, std::chrono::milliseconds grace, int signal);
  Status Destroy(const std::string& id, bool force);
  Result<TaskStatus> Inspect(const std::string& id);
  Result<TaskStats> Stats(const std::string& id);
  Result<TaskLogs> Logs(const std::string& id);
  void SetExitHandler(Driver::ExitHandler handler);

  // A running task as an exec session sees it: its first process pinned by `pidfd` (open for
  // the session's start), its handle state.
  struct ExecTarget {
    int pid = 0;
    int pidfd = -1;
    const Json* state = nullptr;
  };
  // Adapts the context read from the task's first process, and returns what the session's
  // child runs before it changes directory and user (empty: nothing; see StartExecSession).
  using ExecPrepare =
      std::function<Result<std::function<int()>>(const ExecTarget& target, ProcessContext& context)>;
  // Runs a command in task `id`'s context (read from its live first process, so a recovered
  // task gets the same as a fresh one) and cgroup. kNotFound when the task does not run.
  Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options,
                              ExecCallbacks callbacks, const ExecPrepare& prepare = {});

  // {"healthy": true, "detail": "host processes, ...", "cgroups": {...}}: a process driver's
  // fingerprint, which a confining driver extends.
  Json Fingerprint();
  // Removes the empty groups under the cgroup parent that no task owns and that are older than
  // `min_age` (a group is made moments before its task joins it): what an agent killed mid-way
  // left behind. After Recover; returns how many went.
  int SweepEmptyGroups(std::chrono::seconds min_age);
  // Whether task `id` is known and has not exited.
  bool Running(const std::string& id);
  // A new log relay for a run of `config`, after the previous run's one is gone: one writer of
  // the logs at a time. nullopt when there is no relay binary, or it failed to start (said in
  // the log): the workload then writes the files itself.
  std::optional<LogRelay> StartRelay(const TaskConfig& config);

  // Why tasks run without a cgroup; empty when they have one.
  const std::string& cgroups_unusable() const { return cgroups_unusable_; }
  const SupervisorOptions& options() const { return opts_; }

 private:
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

  ProcessSupervisor(std::string driver, SupervisorOptions options, SupervisorPolicy policy);
  Status Init();
  std::string P() const { return driver_ + ": "; }
  // Limits asked for are enforced, or the task does not start: never silently.
  Status CheckEnforceable(const Json& spec, const CgroupLimits& limits);
  // Pins handle.state's pid with a pidfd and opens its cgroup. `verify`: the pid must still have
  // the recorded start time, and a task found gone has its empty group removed.
  Result<Task> Pin(const TaskHandle& handle, bool verify);
  // The previous run's handle state of task `id`, empty when there was none.
  Json PreviousState(const std::string& id);
  void ReaperLoop();
  void OnPidfdReadable(int pidfd);
  // The group's verdict on an exit: its stragglers killed, OOM kills and refused forks reported.
  void AccountExit(Cgroup& group, std::optional<int64_t> memory_limit, ExitResult& result);
  // SIGKILLs everything of the task: its cgroup, or (without one) its process group.
  Status KillTree(const std::string& id);
  // Kills what is left in a finished task's group and removes the group.
  void ReleaseCgroup(const std::string& id, Cgroup* group);
  Status Track(const std::string& id, Task task);

  const std::string driver_;
  SupervisorOptions opts_;
  const SupervisorPolicy policy_;
  std::string cgroups_unusable_;
  int epfd_ = -1;
  int wake_fd_ = -1;
  std::mutex mu_;
  std::condition_variable exited_cv_;
  std::map<std::string, Task> tasks_;
  Driver::ExitHandler on_exit_;
  bool stopping_ = false;
  std::thread reaper_;
};
using ProcessSupervisorPtr = std::unique_ptr<ProcessSupervisor>;

}  // namespace mentat
