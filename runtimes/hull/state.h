// hull's state on disk (seed 003, "State & Logs"): no daemon and no socket, the filesystem is the
// API. Every command reads containers/<name>/state.json; a container is alive only while its
// PID 1 exists with the start time recorded at launch, so a recycled pid never passes for it.
//   $STATE_DIR/containers/<name>/{state.json, stdout.log, stderr.log, exit-status.json, lock}
//   (bridge IP leases are host-wide, per network namespace: see leases.h)
//   $STATE_DIR/rootfs-cache/     (extracted .tar.gz root filesystems)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/hull_manifest.h"
#include "apis/object.h"

namespace mentat::hull {

// HULL_STATE_DIR, then $HOME/.hull/state, then /var/lib/hull/state.
std::string ResolveStateDir();

// How the workload ended, from sandbox-init's status line or what hull saw.
struct ExitInfo {
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string exec_error;  // the workload's exec failed: why
  std::string note;        // e.g. "killed by hull kill"
  // A process of the container killed by seccomp, from the kernel's audit record.
  std::optional<int> seccomp_syscall;
  std::string seccomp_syscall_name;
  int seccomp_pid = 0;
  std::string seccomp_comm;
  Json ToJson() const;
  static ExitInfo FromJson(const Json& j);
  std::string Describe() const;  // "exited 0", "killed by SIGSYS: seccomp blocked ptrace (101)"
};

struct ContainerState {
  std::string name;
  std::string status;  // "running" or "exited"
  pid_t pid = 0;                 // the container's PID 1 (sandbox-init), host pid
  uint64_t start_ticks = 0;      // its start time (/proc/<pid>/stat field 22)
  int64_t started_at = 0;        // unix seconds
  int64_t finished_at = 0;       // unix seconds, when seen exited
  pid_t workload_pid = 0;        // the workload (container pid 2), host pid; 0 if unseen
  int64_t audit_session = 0;     // its own audit session id, or 0 (then pids are matched)
  std::string cgroup;            // relative group path, e.g. "hull/web-1a2b3c" (StateDir::CgroupPath)
  std::string cgroup_version;    // "v1" or "v2"
  std::string root;              // the container's root directory on the host
  std::string upper;             // overlay writable layer (tar.gz rootfs), or ""
  std::string work;
  // Part 2: network "bridge" (the leased address, the host end of the veth pair) and --rootless
  // (the host uid/gid that uid/gid 0 of the container map to; -1 without a user namespace).
  std::string ip;
  std::string host_veth;
  std::string lease_dir;  // where its lease lives (LeaseDirFor: per network namespace and bridge)
  int64_t rootless_uid = -1;
  int64_t rootless_gid = -1;
  std::vector<std::string> warnings;  // what was skipped, e.g. cgroup limits when rootless
  HullManifest manifest;
  std::optional<ExitInfo> exit;

  Json ToJson() const;
  static Result<ContainerState> FromJson(const Json& j);
};

class StateDir {
 public:
  explicit StateDir(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  std::string ContainerDir(const std::string& name) const { return root_ + "/containers/" + name; }
  std::string StatePath(const std::string& name) const { return ContainerDir(name) + "/state.json"; }
  std::string StdoutPath(const std::string& name) const { return ContainerDir(name) + "/stdout.log"; }
  std::string StderrPath(const std::string& name) const { return ContainerDir(name) + "/stderr.log"; }
  std::string ExitStatusPath(const std::string& name) const {
    return ContainerDir(name) + "/exit-status.json";
  }
  std::string CacheDir() const { return root_ + "/rootfs-cache"; }
  // The container's cgroup, relative to the hierarchy roots: hull/<name>-<inode of the state
  // directory, hex>. A name is unique within one state directory only; the inode keeps two of
  // them (the agent's and an operator's) from sharing, and killing, each other's groups.
  std::string CgroupPath(const std::string& name) const;

  // Creates containers/, leases/ and rootfs-cache/.
  Status Ensure() const;
  // kNotFound "no container named X" when it has no state.json.
  Result<ContainerState> Load(const std::string& name) const;
  // Atomically (write to a temp file, rename; no fsync: Save says why).
  Status Save(const ContainerState& state) const;
  // Names with a state.json, sorted.
  Result<std::vector<std::string>> List() const;

 private:
  std::string root_;
};

// An exclusive flock on containers/<name>/lock, held until destroyed. `wait`: block; otherwise
// kConflict when another hull holds it.
class ContainerLock {
 public:
  static Result<ContainerLock> Acquire(const StateDir& dir, const std::string& name, bool wait);
  ContainerLock(ContainerLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ContainerLock& operator=(ContainerLock&&) = delete;
  ~ContainerLock();

 private:
  explicit ContainerLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// /proc/<pid>/stat: the state letter and the start time; nullopt when the pid does not exist.
struct ProcStat {
  char state = '?';
  uint64_t start_ticks = 0;
};
std::optional<ProcStat> ReadProcStat(pid_t pid);

// True while the recorded PID 1 exists, is not a zombie, and has the recorded start time.
bool InitAlive(const ContainerState& s);

// Brings a record up to date: a container whose PID 1 is gone becomes "exited", with what
// sandbox-init wrote (or `hint` when it wrote nothing: e.g. it was SIGKILLed), the seccomp kill
// found in the kernel log, and its cgroup removed; then saved. Takes the container's lock unless
// the caller holds it (`locked`). A bridge container's lease and host veth are released too.
Status Refresh(const StateDir& dir, ContainerState& s, const ExitInfo* hint = nullptr, bool locked = false);

}  // namespace mentat::hull
