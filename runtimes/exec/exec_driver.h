// The exec driver (seed 000): a trusted host process with command, args, env and cwd, in its
// own session and process group, stdout/stderr appended to files in the task directory.
// Everything around the process (its cgroup and limits, exits through pidfds, stop with grace,
// recover, exec sessions, stats) is its ProcessSupervisor's (supervisor.h); the driver adds how
// the process is made: fork, the task's user and directory, execve.
#pragma once

#include <memory>

#include "runtimes/driver.h"
#include "runtimes/exec/child_argv.h"
#include "runtimes/exec/supervised_driver.h"
#include "runtimes/exec/supervisor.h"

namespace mentat {

using ExecDriverOptions = SupervisorOptions;

class ExecDriver : public SupervisedDriver<ExecDriver> {
 public:
  static Result<std::unique_ptr<ExecDriver>> Create(ExecDriverOptions options = {});

  std::string Name() const override { return "exec"; }
  Result<TaskHandle> Start(const TaskConfig& config) override;
  Json Capabilities() const override;

  // ProcessSupervisor::SweepEmptyGroups.
  int SweepEmptyGroups(std::chrono::seconds min_age) {
    return supervisor_->SweepEmptyGroups(min_age);
  }
  ProcessSupervisor& supervisor() { return *supervisor_; }

 private:
  ExecDriver() = default;

  ProcessSupervisorPtr supervisor_;
};

// Makes the first process of an exec task: a host process in a session of its own, as
// spec.user (checked against the profile's run_as_non_root), in config.cwd. `prefix` starts
// every message ("exec: ").
Result<ProcessSupervisor::Spawned> SpawnHostProcess(const TaskConfig& config,
                                                    const ProcessSupervisor::SpawnIO& io,
                                                    const std::string& prefix);

// spec.user ("name", "uid", "name:group", "uid:gid") as ids, with the user's supplementary
// groups. kInvalidArgument naming `user` when the node has no such user or group.
struct TaskUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};
Result<TaskUser> ResolveTaskUser(const std::string& spec);

}  // namespace mentat
