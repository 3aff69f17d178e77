// The sandbox driver (seeds 000 and 001): a workload confined by the kernel with no daemon.
//
//   - PID, mount, UTS and IPC namespaces; the network is the host's, as the seed says.
//   - pivot_root into an overlayfs: the app rootfs and the base as read-only layers, and a
//     writable layer of the allocation's own (kept across restarts, removed on destroy).
//   - A fresh /proc with the kernel's knobs read-only or masked; a /dev of null, zero, random
//     and urandom (and a /dev/shm tmpfs); volumes as bind mounts, read-only when asked.
//   - Every capability dropped (bounding, permitted, effective, inheritable, ambient),
//     no_new_privs, a seccomp deny list (seccomp.h) and a Landlock ruleset (landlock.h).
//   - memory, cpu and pids limits through the task's cgroup, as for exec.
//   - sandbox-init (//cmd/sandbox-init) as PID 1: it reaps, forwards signals and reports the
//     workload's exact exit status through a file the driver reads.
//
// The child between clone and exec makes system calls only: every plan (overlay options, the
// seccomp program, the capability set) is built in the agent first. It is cloned with CLONE_VM
// and CLONE_VFORK, so a start costs no copy of the agent's memory.
#pragma once

#include <functional>
#include <memory>

#include "runtimes/exec/supervised_driver.h"
#include "runtimes/exec/supervisor.h"
#include "runtimes/isolation/caps.h"
#include "runtimes/isolation/init_binary.h"
#include "runtimes/isolation/landlock.h"
#include "runtimes/isolation/seccomp.h"

namespace mentat {

struct SandboxDriverOptions {
  SupervisorOptions process;  // cgroups, as for exec
  // The sandbox-init binary; empty: FindSandboxInit().
  std::string init_path;
  // A base name (spec.base) -> the directory of its root filesystem, built on first use.
  // Unset: a spec with a base fails to start, saying so.
  std::function<Result<std::string>(const std::string& base)> resolve_base;
  // The bases this node has, for the fingerprint.
  std::function<Json()> describe_bases;
};

class SandboxDriver : public SupervisedDriver<SandboxDriver> {
 public:
  static Result<std::unique_ptr<SandboxDriver>> Create(SandboxDriverOptions options);

  std::string Name() const override { return "sandbox"; }
  Result<TaskHandle> Start(const TaskConfig& config) override;
  Json Fingerprint() override;
  Json Capabilities() const override;
  // In the task's namespaces, cgroup and restrictions, with its environment.
  Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options,
                              ExecCallbacks callbacks) override;

  ProcessSupervisor& supervisor() { return *supervisor_; }

 private:
  explicit SandboxDriver(SandboxDriverOptions options) : sopts_(std::move(options)) {}
  // The task's first process: sandbox-init cloned into new namespaces on its overlay root.
  Result<ProcessSupervisor::Spawned> Spawn(const TaskConfig& config,
                                           const ProcessSupervisor::SpawnIO& io);
  std::string P() const { return Name() + ": "; }

  SandboxDriverOptions sopts_;
  std::string unusable_;  // why this host cannot run sandboxes; empty when it can
  std::shared_ptr<const SeccompProgram> seccomp_;
  std::unique_ptr<CapsPlan> caps_;
  LandlockPlan landlock_;
  // Last: destroyed first, so its exit watcher stops before what its hooks use goes.
  ProcessSupervisorPtr supervisor_;
};

// Why this host cannot run sandboxes ("" when it can): root, overlayfs, sandbox-init at
// `init_path`.
std::string SandboxUnusable(const std::string& init_path);

}  // namespace mentat
