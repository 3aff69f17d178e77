// The Driver interface every runtime implements (exec, sandbox, hull, docker, vm), after
// Nomad's driver plugin: Start returns a persisted handle that Recover re-attaches to after an
// agent restart, so workloads keep running across agent crashes ("Mars Mode").
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/service.h"
#include "runtimes/logs/log_rotate.h"

namespace mentat {

// Whose task it is: the Allocation it runs, as the agent read it. Drivers that label or name
// what they make (the docker driver's container labels) take it from here, never from the id.
struct TaskIdentity {
  std::string namespace_name;  // the Allocation's namespace, e.g. "default"
  std::string service;         // the Service that owns it, e.g. "hello"
  std::string allocation;      // the Allocation's name, e.g. "hello-0"
  int slot = -1;               // its index among the Service's replicas; -1 when unknown
};

// What to run. Built by the agent from an Allocation.
struct TaskConfig {
  std::string id;  // unique on the node, e.g. "default.hello-0"
  TaskIdentity identity;
  std::string command;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string cwd;
  std::string task_dir;  // per-task directory: logs (stdout.log, stderr.log) and driver files
  Json spec;             // the full canonical service spec, for driver-specific fields
  LogLimits log_limits;  // spec.logs over the agent's defaults: for a driver whose writer rotates
};

// Persisted by the agent after Start; everything Recover needs. `state` is driver-owned.
struct TaskHandle {
  int version = 1;
  std::string driver;
  std::string id;
  Json state = Json::object();

  Json ToJson() const;
  static Result<TaskHandle> FromJson(const Json& j);
};

struct ExitResult {
  std::optional<int> exit_code;  // unknown when the task was recovered and not our child
  std::optional<int> signal;
  bool oom_killed = false;
  std::string message;
  uint64_t pids_limit_hits = 0;  // forks the task's pids limit refused during this run
};

enum class TaskState { kRunning, kExited };

// Usage of a task's whole process tree, from its cgroup.
struct TaskStats {
  uint64_t memory_bytes = 0;
  uint64_t memory_peak_bytes = 0;  // 0 where the kernel does not say
  uint64_t cpu_usage_ns = 0;       // CPU time used since the task started
  uint64_t pids = 0;               // processes and threads now
  uint64_t pids_limit_hits = 0;    // forks refused by the task's pids limit
};

struct TaskLogs {
  std::string stdout_path, stderr_path;
  // The logs' writer (a log relay, the docker driver's pump) indexes every chunk and rotates:
  // the agent must not. Otherwise the workload writes the files and the agent samples and
  // rotates them (log_index.h).
  bool self_indexed = false;
};

struct TaskStatus {
  TaskState state = TaskState::kRunning;
  int pid = 0;
  std::string started_at;  // RFC 3339
  std::optional<ExitResult> exit;
};

// A command run inside a running task's context (Nomad's ExecTaskStreaming, `docker exec`).
struct ExecOptions {
  std::vector<std::string> command;  // argv; argv[0] is looked up on the task's PATH
  bool tty = false;    // a pseudo-terminal for stdin, stdout and stderr (output is all stdout)
  bool stdin = false;  // false: stdin is /dev/null (with tty: nothing is ever typed)
  unsigned short rows = 24, cols = 80;  // the terminal's first size, with tty
};

enum class ExecStream { kStdout, kStderr };

// What a session reports, from a driver thread. `output` runs for every chunk, in order; it
// may block (the command then blocks writing: back-pressure, nothing is dropped). `exit` runs
// once, after the last output.
struct ExecCallbacks {
  std::function<void(ExecStream stream, std::string_view data)> output;
  std::function<void(const ExitResult& exit)> exit;
};

// One command started by Driver::Exec. Destroying it kills what is left of the command (its
// whole process group, or the driver's equivalent) and reaps it; it must not be destroyed from
// inside its own callbacks.
class ExecSession {
 public:
  virtual ~ExecSession() = default;
  // Blocks while the command is not reading, up to a few seconds (then kUnavailable).
  virtual Status WriteStdin(std::string_view data) = 0;
  // End of input: the pipe is closed; on a tty, an end-of-file character (^D) is typed.
  virtual Status CloseStdin() = 0;
  // kFailedPrecondition without a tty.
  virtual Status Resize(unsigned short rows, unsigned short cols) = 0;
  // Kills the command; `exit` then reports the signal.
  virtual void Kill() = 0;
  // The exit, or nullopt when `timeout` passes first.
  virtual std::optional<ExitResult> Wait(std::chrono::milliseconds timeout) = 0;
};
using ExecSessionPtr = std::unique_ptr<ExecSession>;

// What the agent can look up for a driver that completes a task's config (ResolveConfig).
struct ConfigSources {
  // Puts the SecurityProfile that spec.security.profile names, as the server holds it now,
  // under spec.security.resolved (nothing for a built-in profile). kUnavailable when the server
  // cannot be asked: the start fails and is retried, never made without its profile.
  std::function<Status(Json& spec)> attach_security_profile;
};

class Driver {
 public:
  using ExitHandler = std::function<void(const std::string& id, const ExitResult&)>;

  virtual ~Driver() = default;
  virtual std::string Name() const = 0;

  // Starts the task and returns its handle. The task must outlive the agent process.
  virtual Result<TaskHandle> Start(const TaskConfig& config) = 0;
  // Re-attaches to a task started by an earlier agent. kNotFound when it is gone (and is then
  // never confused with a different process that reused its pid).
  virtual Status Recover(const TaskHandle& handle) = 0;
  // Blocks until the task exits or `timeout` passes (nullopt).
  virtual Result<std::optional<ExitResult>> Wait(const std::string& id,
                                                 std::chrono::milliseconds timeout) = 0;
  // Sends `signal`, waits up to `grace`, then kills the whole task.
  virtual Status Stop(const std::string& id, std::chrono::milliseconds grace, int signal) = 0;
  // Forgets the task and frees its resources; `force` kills it first if it still runs.
  virtual Status Destroy(const std::string& id, bool force) = 0;
  virtual Result<TaskStatus> Inspect(const std::string& id) = 0;
  // kNotFound for an unknown task; kFailedPrecondition when the task has no cgroup to read
  // (cgroups are not usable on this host), saying why.
  virtual Result<TaskStats> Stats(const std::string& id) = 0;
  virtual Status Signal(const std::string& id, int signal) = 0;
  // Runs a command inside the running task `id`: its environment, working directory and user
  // (and, for isolating drivers, its namespaces and cgroup). kNotFound when the task does not
  // run; kInvalidArgument when the command cannot be started (e.g. no such file).
  virtual Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options,
                                      ExecCallbacks callbacks) = 0;
  // What this host supports for the driver: {"healthy": bool, "detail": ..., ...}.
  virtual Json Fingerprint() = 0;
  // What the driver can do, whatever the host (Nomad's Capabilities): {"exec", "signal",
  // "recover": bool, "isolation": "none" | "namespaces" | "vm", "limits": [...]}.
  virtual Json Capabilities() const = 0;
  // Where a task's output is: the files its writer appends (followed by the agent's log
  // endpoint), and who indexes them. kNotFound for an unknown task.
  virtual Result<TaskLogs> Logs(const std::string& id) = 0;

  // Called from a driver thread whenever a task exits. Set once, before Start/Recover.
  virtual void SetExitHandler(ExitHandler handler) = 0;

  // Completes `config` before Start with what only the agent can look up, for the spec fields
  // this driver owns (the docker driver: the resolved security profile). Called without the
  // agent's locks; may block. An error fails this start.
  virtual Status ResolveConfig(TaskConfig& config, const ConfigSources& sources) { return {}; }
  // Called once after the agent has recovered every persisted handle: what no recovered task
  // owns is the driver's to clean up (orphaned containers, empty cgroups a killed agent left).
  // Errors are reported and do not stop the agent.
  virtual Status CleanupAfterRecovery() { return {}; }
};
using DriverPtr = std::unique_ptr<Driver>;

}  // namespace mentat
