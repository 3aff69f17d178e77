// The Driver interface every runtime implements (exec, sandbox, hull, docker, vm), after
// Nomad's driver plugin: Start returns a persisted handle that Recover re-attaches to after an
// agent restart, so workloads keep running across agent crashes ("Mars Mode").
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/service.h"

namespace mentat {

// What to run. Built by the agent from an Allocation.
struct TaskConfig {
  std::string id;  // unique on the node, e.g. "default.hello-0"
  std::string command;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string cwd;
  std::string task_dir;  // per-task directory: logs (stdout.log, stderr.log) and driver files
  Json spec;             // the full canonical service spec, for driver-specific fields
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
};

enum class TaskState { kRunning, kExited };

struct TaskStatus {
  TaskState state = TaskState::kRunning;
  int pid = 0;
  std::string started_at;  // RFC 3339
  std::optional<ExitResult> exit;
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
  virtual Status Signal(const std::string& id, int signal) = 0;
  // What this host supports for the driver: {"healthy": bool, "detail": ..., ...}.
  virtual Json Fingerprint() = 0;

  // Called from a driver thread whenever a task exits. Set once, before Start/Recover.
  virtual void SetExitHandler(ExitHandler handler) = 0;
};
using DriverPtr = std::unique_ptr<Driver>;

}  // namespace mentat
