// The Driver methods that a driver holding a ProcessSupervisor answers with the supervisor alone
// (wait, stop, destroy, inspect, stats, logs, signal, recover, exec in the task's context), so
// that exec, sandbox, hull and a VM driver each write only what is theirs: how the process is
// made and confined. The supervisor is a member of the driver, not of this adapter: declared
// last, it stops its exit watcher before anything its hooks use is destroyed.
#pragma once

#include "runtimes/driver.h"
#include "runtimes/exec/supervisor.h"

namespace mentat {

// `Self` derives from SupervisedDriver<Self> and has `ProcessSupervisor& supervisor()`.
template <class Self>
class SupervisedDriver : public Driver {
 public:
  Status Recover(const TaskHandle& handle) override { return Sup().Recover(handle); }
  Result<std::optional<ExitResult>> Wait(const std::string& id,
                                         std::chrono::milliseconds timeout) override {
    return Sup().Wait(id, timeout);
  }
  Status Stop(const std::string& id, std::chrono::milliseconds grace, int signal) override {
    return Sup().Stop(id, grace, signal);
  }
  Status Destroy(const std::string& id, bool force) override { return Sup().Destroy(id, force); }
  Result<TaskStatus> Inspect(const std::string& id) override { return Sup().Inspect(id); }
  Result<TaskStats> Stats(const std::string& id) override { return Sup().Stats(id); }
  Status Signal(const std::string& id, int signal) override { return Sup().Signal(id, signal); }
  Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options,
                              ExecCallbacks callbacks) override {
    return Sup().Exec(id, options, std::move(callbacks));
  }
  Json Fingerprint() override { return Sup().Fingerprint(); }
  Result<TaskLogs> Logs(const std::string& id) override { return Sup().Logs(id); }
  void SetExitHandler(ExitHandler handler) override { Sup().SetExitHandler(std::move(handler)); }
  // Empty groups an agent killed mid-start left behind: only those older than a minute, so a
  // group another agent on this host made a moment ago is never taken.
  Status CleanupAfterRecovery() override {
    Sup().SweepEmptyGroups(std::chrono::seconds(60));
    return {};
  }

 private:
  ProcessSupervisor& Sup() { return static_cast<Self*>(this)->supervisor(); }
};

}  // namespace mentat
