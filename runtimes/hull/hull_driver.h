// The hull driver (seed 000's HullDriver, issue 8): each task is a hull container (seed 003),
// started in-process through hull's library (runtimes/hull/container.h) on a state directory
// of the agent's own (<data>/hull/state). No daemon: the container's PID 1 (sandbox-init)
// outlives the agent, and `hull ps`, `hull inspect`, `hull logs` on the same HULL_STATE_DIR
// see it.
//
// The agent hands a Service spec; the driver generates the hull manifest from it
// (HullManifestForTask): spec.manifest (a JSON file on the node, or an inline object) is the
// base, and the Service's fields override or extend it. The generated manifest is written to
// <task dir>/hull-manifest.json for the operator.
//
// Everything after the start (exits through a pidfd, the exact exit status that sandbox-init
// writes, stop with grace then kill, OOM and pids reports, stats, recover by pid and start time)
// is the driver's ProcessSupervisor's, pointed at the container's PID 1 and at the cgroup hull
// made for it (hull/<name>).
#pragma once

#include <memory>
#include <string>

#include "apis/hull_manifest.h"
#include "runtimes/exec/supervised_driver.h"
#include "runtimes/exec/supervisor.h"
#include "runtimes/hull/state.h"
#include "runtimes/isolation/caps.h"
#include "runtimes/isolation/landlock.h"

namespace mentat {

struct HullDriverOptions {
  SupervisorOptions process;  // core_mhz for resources.cpu_mhz; cgroups
  std::string state_dir;      // hull's state directory; empty: hull::ResolveStateDir()
  std::string init_path;      // sandbox-init; empty: FindSandboxInit()
};

// hull's name for task `id` ("default.web-0" -> "default-web-0-1a2b3c"): [A-Za-z0-9-], at most
// 64 characters, and distinct for distinct ids (a short hash of the id ends it).
std::string HullNameForTask(const std::string& id);

// The manifest hull runs for `config`: spec.manifest as the base (a path on this node or an
// inline object), then spec.rootfs, command + args (argv), env (added to the base's, same names
// replaced), cwd, resources (memory_mb, cpu_percent or cpu_mhz, pids), volumes (mounts) and
// spec.hull {profile, network, hostname}. The name is always HullNameForTask. network defaults
// to the base's, else "host" for a Service with a port (it must be reachable) and hull's "none"
// otherwise. kInvalidArgument naming the field (manifest, rootfs, command, hull.network, ...).
Result<HullManifest> HullManifestForTask(const TaskConfig& config, int64_t core_mhz);

class HullDriver : public SupervisedDriver<HullDriver> {
 public:
  static Result<std::unique_ptr<HullDriver>> Create(HullDriverOptions options);

  std::string Name() const override { return "hull"; }
  Result<TaskHandle> Start(const TaskConfig& config) override;
  // From hull's state.json: the container must still run with the recorded PID 1 and start
  // time; kNotFound when it is gone (its record is then brought up to date).
  Status Recover(const TaskHandle& handle) override;
  // In every namespace of the container, its cgroup, and the same Landlock, capabilities and
  // seccomp profile as the workload.
  Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options,
                              ExecCallbacks callbacks) override;
  Json Fingerprint() override;
  Json Capabilities() const override;

  const hull::StateDir& state_dir() const { return dir_; }
  ProcessSupervisor& supervisor() { return *supervisor_; }

 private:
  explicit HullDriver(HullDriverOptions options);
  // spec.binary: `<binary> run <manifest>` with HULL_STATE_DIR set, then the record it wrote.
  Result<hull::ContainerState> RunBinary(const std::string& binary, const TaskConfig& config,
                                         const std::string& manifest_path, const std::string& name);
  // The container made in this process through hull's library, its output through the task's
  // log relay when there is one (recorded in `relay_state`).
  Result<hull::ContainerState> RunInProcess(const TaskConfig& config, const HullManifest& m,
                                            Json& relay_state);
  // sandbox-init's report of the workload, the container's network given back, and the syscall
  // a seccomp kill was for (from the audit log). The supervisor's refine_exit.
  void RefineExit(const Json& state, ExitResult& result);
  // The container's record and directory go (hull ps no longer lists it). The supervisor's
  // release_task.
  Status ReleaseTask(const std::string& id, const Json& state);
  std::string P() const { return Name() + ": "; }

  HullDriverOptions hopts_;
  hull::StateDir dir_;
  std::string unusable_;  // why this host cannot run hull containers; empty when it can
  std::unique_ptr<CapsPlan> caps_;
  LandlockPlan landlock_;
  // Last: destroyed first, so its exit watcher stops before what its hooks use goes.
  ProcessSupervisorPtr supervisor_;
};

}  // namespace mentat
