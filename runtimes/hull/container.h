// The container operations behind hull's commands, each working from the state directory alone.
// Run launches PID 1 (sandbox-init) in new PID, mount, UTS, IPC, cgroup, network (network
// "none" or "bridge") and user (--rootless) namespaces with every layer of seed 003 applied in
// the child, records it, and returns: no daemon stays behind. Errors carry the exit code the
// CLI must use.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/hull_manifest.h"
#include "apis/object.h"
#include "runtimes/hull/state.h"

namespace mentat::hull {

// hull's exit codes (seed 003, "Exit Codes").
enum ExitCode : int { kExitOk = 0, kExitUsage = 1, kExitRuntime = 2, kExitManifest = 3, kExitExec = 127 };

// An error and the exit code it maps to.
struct Failure {
  int exit_code = kExitRuntime;
  Error error;
};
template <class T>
using Outcome = std::expected<T, Failure>;

struct RunOptions {
  std::string init_path;  // sandbox-init; FindSandboxInit() when empty
  // How long Run waits for the workload's exec to succeed or fail (to exit 127 on a failure).
  std::chrono::milliseconds exec_wait{3000};
  // --rootless: a new user namespace whose 0 maps to an unprivileged host id (see
  // RootlessMapping in gated_start.h and docs/hull.md).
  bool rootless = false;
  // Where the workload's stdout and stderr go; empty: containers/<name>/stdout.log, stderr.log.
  // The hull driver points them at the task directory, where the agent reads and rotates logs.
  std::string stdout_path, stderr_path;
  // Descriptors for them instead, when set (the write ends of the task's log relay's pipes, from
  // the hull driver); Run dup's them and leaves these open.
  int stdout_fd = -1, stderr_fd = -1;
};

// Starts the container; returns its record (saved). Exit codes: 2 runtime (already running,
// a concurrent run, namespaces, cgroups, id maps, the bridge, a bridge.ip leased by another
// container), 3 manifest (cwd or a mount that does not exist, a bad bridge.ip or subnet), 127
// the workload could not be exec'd. Network "bridge" also takes an address lease
// (runtimes/hull/leases.h), released by whoever records the exit (Refresh).
Outcome<ContainerState> Run(const StateDir& dir, const HullManifest& manifest, const RunOptions& options);

// Runs argv inside the running container `name` (setns into each of its namespaces, its cgroup,
// the same Landlock, capabilities and seccomp profile) with this process's stdio; returns the
// command's exit code (128+N after signal N, 127 when it could not be exec'd).
Outcome<int> Exec(const StateDir& dir, const std::string& name, const std::vector<std::string>& argv);

// Sends `sig` to PID 1 (which forwards it to the workload; SIGKILL ends the whole namespace),
// waits up to `grace` for the exit, then SIGKILLs. Returns the refreshed record.
Outcome<ContainerState> Stop(const StateDir& dir, const std::string& name, int sig,
                             std::chrono::milliseconds grace);

// Status, live cgroup limits and usage, the namespaces of PID 1 (inode numbers, and which are the
// container's own rather than the host's), the first 12 mounts of its mountinfo.
Outcome<Json> Inspect(const StateDir& dir, const std::string& name);

}  // namespace mentat::hull
