// Control groups for the drivers: memory, CPU and pids limits enforced by the kernel, the
// whole process tree of a task killed at once, its usage and OOM kills read back. Two backends
// behind one interface, chosen by probing /sys/fs/cgroup: cgroup v2 (production hosts) and v1
// (hybrid hosts such as the development machines, one hierarchy per controller).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"

namespace mentat {

// What the kernel enforces on a group. Unset fields are left unlimited.
struct CgroupLimits {
  std::optional<int64_t> memory_bytes;  // RAM; swap is never granted on top of it
  std::optional<int64_t> cpu_percent;   // of one core: 50 = half a core, 200 = two cores
  std::optional<int64_t> pids_max;      // processes and threads
};

struct CgroupStats {
  uint64_t memory_bytes = 0;       // charged now
  uint64_t memory_peak_bytes = 0;  // highest charge seen (0 where the kernel does not say)
  uint64_t cpu_usage_ns = 0;       // CPU time used by every member, ever
  uint64_t pids = 0;               // processes and threads now
  uint64_t pids_limit_hits = 0;    // forks and clones refused by pids.max, ever
};

// The controllers a limit needs.
enum class CgroupController { kMemory, kCpu, kPids };
const char* ControllerName(CgroupController c);

// One group: the same relative path in every hierarchy the backend uses. Not thread-safe;
// the owning driver serializes calls.
class Cgroup {
 public:
  virtual ~Cgroup() = default;
  // Relative to the hierarchy roots, e.g. "mentat/default.web-3f2a". What Open() takes.
  virtual const std::string& path() const = 0;

  // Moves a running process (only that process; its future children follow it).
  virtual Status AddProcess(pid_t pid) = 0;
  // The files to join, opened close-on-exec, for a single-threaded child between fork and
  // exec: it calls JoinCgroupInChild on them, so nothing it forks ever runs outside the group.
  // (v1: each hierarchy's `tasks`, which moves the calling thread without the global rwsem
  // that a cgroup.procs write takes; v2: cgroup.procs.)
  virtual Result<std::vector<int>> OpenProcsFiles() = 0;
  // The paths OpenProcsFiles opens: for a child that opens them itself (hull's, which may start
  // before the group is made; runtimes/hull/cgroup_setup.h).
  virtual std::vector<std::string> JoinFiles() const = 0;
  // Members now (every hierarchy's, merged).
  virtual Result<std::vector<pid_t>> Pids() = 0;

  virtual Result<CgroupStats> Stats() = 0;
  // The limits the kernel enforces now, read back from the interface files (unset: unlimited).
  virtual Result<CgroupLimits> Limits() = 0;
  // How many times the kernel's OOM killer killed a member for the group's memory limit.
  virtual Result<uint64_t> OomKills() = 0;

  // SIGKILLs every member, including those that left the task's session or process group, and
  // waits until the group is empty (a few seconds at most; then kUnavailable).
  virtual Status KillAll() = 0;
  // Removes the group from every hierarchy. kFailedPrecondition while members remain.
  virtual Status Destroy() = 0;
};
using CgroupPtr = std::unique_ptr<Cgroup>;

// In a freshly forked child: writes "0" (the calling process) to each fd from OpenProcsFiles.
// Async-signal-safe. Returns 0, or the errno of the first write that failed.
int JoinCgroupInChild(const std::vector<int>& procs_fds) noexcept;

// The cgroup hierarchies of this host, as one backend.
class CgroupHost {
 public:
  virtual ~CgroupHost() = default;

  // Probes `mount_root` (statfs): cgroup2 there means v2; otherwise the v1 hierarchies mounted
  // under it are used (from /proc/self/mountinfo). Always returns a host; one with nothing
  // usable says why through Usable().
  static std::unique_ptr<CgroupHost> Probe(const std::string& mount_root = "/sys/fs/cgroup");
  // A v2 backend on the unified hierarchy at `root` (tests point it at a simulated tree).
  static std::unique_ptr<CgroupHost> V2(std::string root);
  // A v1 backend on the given hierarchies: controller ("memory", "cpu", "cpuacct", "pids",
  // "freezer") -> the directory it is mounted on. Co-mounted controllers share a directory.
  static std::unique_ptr<CgroupHost> V1(std::map<std::string, std::string> mounts);

  virtual std::string Version() const = 0;  // "v1" or "v2"
  // OK when limits of this controller can be applied here; otherwise kFailedPrecondition whose
  // message says why, e.g. "/sys/fs/cgroup/memory is not writable".
  virtual Status Usable(CgroupController c) const = 0;
  // OK when a group can be made at all (for KillAll and Stats without limits).
  virtual Status UsableForTracking() const = 0;
  // {"version", "controllers": {name: "ok" | why not}, "killAll": "cgroup.kill" | "freezer" |
  // "signal loop"}: for a driver's Fingerprint.
  virtual Json Describe() const = 0;

  // Makes group `path` (parents as needed) with `limits`. A group left at `path` by a crash
  // is reused when it is empty. A limit whose controller is not Usable is an error.
  virtual Result<CgroupPtr> Create(const std::string& path, const CgroupLimits& limits) = 0;
  // Re-opens an existing group (after an agent restart). kNotFound when it is gone.
  virtual Result<CgroupPtr> Open(const std::string& path) = 0;
  // The groups directly under `parent` (relative paths, e.g. "mentat/web-0-3f2a9c1d"), in any
  // hierarchy, with the newest modification time of their directories.
  struct Child {
    std::string path;
    int64_t mtime_unix = 0;
  };
  virtual Result<std::vector<Child>> Children(const std::string& parent) = 0;

 protected:
  // Usable() of each controller: {name: "ok" | why not}.
  Json DescribeControllers() const;
  // The first limit in `limits` whose controller is not Usable(), as its error.
  Status CheckUsable(const CgroupLimits& limits) const;
};
using CgroupHostPtr = std::unique_ptr<CgroupHost>;

// cfs period used for CPU quotas, in microseconds.
inline constexpr int64_t kCpuPeriodUs = 100000;
// percent of a core -> quota per kCpuPeriodUs (at least the kernel's 1 ms minimum).
int64_t CpuQuotaUs(int64_t cpu_percent);

}  // namespace mentat
