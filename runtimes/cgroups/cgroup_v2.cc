// The cgroup v2 backend: one unified hierarchy. Controllers reach a group only when every
// ancestor enables them in cgroup.subtree_control, and (the "no internal processes" rule) a
// group that enables them may not hold processes itself: so tasks' groups sit under a parent
// of their own, e.g. /sys/fs/cgroup/mentat/<task>, never under the agent's own group.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "runtimes/cgroups/cgroup_fs.h"
#include "runtimes/cgroups/cgroups.h"

namespace mentat {
namespace {

namespace cfs = cgroupfs;
using namespace std::chrono_literals;

class CgroupV2 : public Cgroup {
 public:
  CgroupV2(std::string path, std::string dir) : path_(std::move(path)), dir_(std::move(dir)) {}

  const std::string& path() const override { return path_; }

  Status AddProcess(pid_t pid) override {
    return cfs::Write(dir_ + "/cgroup.procs", std::to_string(pid));
  }

  Result<std::vector<int>> OpenProcsFiles() override { return cfs::OpenForWriting(JoinFiles()); }

  std::vector<std::string> JoinFiles() const override { return {dir_ + "/cgroup.procs"}; }

  Result<std::vector<pid_t>> Pids() override {
    auto pids = cfs::ReadPids(dir_ + "/cgroup.procs");
    if (!pids && pids.error().code() == Code::kNotFound) return std::vector<pid_t>{};
    return pids;
  }

  Result<CgroupStats> Stats() override {
    CgroupStats s;
    if (cfs::Exists(dir_ + "/memory.current")) {
      MT_ASSIGN_OR_RETURN(auto cur, cfs::ReadUint(dir_ + "/memory.current"));
      s.memory_bytes = cur.value_or(0);
    }
    if (cfs::Exists(dir_ + "/memory.peak")) {  // Linux 5.19 and later
      MT_ASSIGN_OR_RETURN(auto peak, cfs::ReadUint(dir_ + "/memory.peak"));
      s.memory_peak_bytes = peak.value_or(0);
    }
    // cpu.stat is there even without the cpu controller.
    MT_ASSIGN_OR_RETURN(uint64_t usec, cfs::ReadKey(dir_ + "/cpu.stat", "usage_usec"));
    s.cpu_usage_ns = usec * 1000;
    // The pids controller's files are there when it is enabled for the group.
    const auto pids_dir = cfs::Exists(dir_ + "/pids.current") ? std::optional(dir_) : std::nullopt;
    MT_RETURN_IF_ERROR(cfs::ReadPidCounts(pids_dir, [this] { return Pids(); }, &s.pids, &s.pids_limit_hits));
    return s;
  }

  Result<CgroupLimits> Limits() override {
    CgroupLimits l;
    if (cfs::Exists(dir_ + "/memory.max")) {
      MT_ASSIGN_OR_RETURN(auto bytes, cfs::ReadUint(dir_ + "/memory.max"));
      if (bytes) l.memory_bytes = static_cast<int64_t>(*bytes);
    }
    if (cfs::Exists(dir_ + "/cpu.max")) {
      // "QUOTA PERIOD" or "max PERIOD".
      MT_ASSIGN_OR_RETURN(std::string max, cfs::Read(dir_ + "/cpu.max"));
      if (max.rfind("max", 0) != 0) {
        char* end = nullptr;
        int64_t quota = std::strtoll(max.c_str(), &end, 10);
        int64_t period = std::strtoll(end, nullptr, 10);
        if (quota > 0 && period > 0) l.cpu_percent = quota * 100 / period;
      }
    }
    if (cfs::Exists(dir_ + "/pids.max")) {
      MT_ASSIGN_OR_RETURN(auto max, cfs::ReadUint(dir_ + "/pids.max"));
      if (max) l.pids_max = static_cast<int64_t>(*max);
    }
    return l;
  }

  Result<uint64_t> OomKills() override {
    if (!cfs::Exists(dir_ + "/memory.events")) return uint64_t{0};  // no memory controller
    return cfs::ReadKey(dir_ + "/memory.events", "oom_kill");
  }

  Status KillAll() override {
    if (cfs::Exists(dir_ + "/cgroup.kill")) {
      // Linux 5.14+: the kernel kills every member, and whatever they fork meanwhile.
      MT_RETURN_IF_ERROR(cfs::Write(dir_ + "/cgroup.kill", "1"));
    } else if (cfs::Exists(dir_ + "/cgroup.freeze")) {
      // Frozen, the tree cannot fork between our read of its members and the signals; a
      // SIGKILLed frozen task still dies.
      if (cfs::Write(dir_ + "/cgroup.freeze", "1")) {
        if (auto pids = Pids()) {
          for (pid_t p : *pids) ::kill(p, SIGKILL);
        }
        cfs::Write(dir_ + "/cgroup.freeze", "0");
      }
    }
    return cfs::KillUntilEmpty([this] { return Pids(); }, 5s, "killing cgroup " + path_);
  }

  Status Destroy() override { return cfs::RemoveDir(dir_); }

 private:
  std::string path_;
  std::string dir_;
};

class CgroupV2Backend : public CgroupHost {
 public:
  explicit CgroupV2Backend(std::string root) : root_(std::move(root)) {}

  std::string Version() const override { return "v2"; }

  Status Usable(CgroupController c) const override {
    MT_RETURN_IF_ERROR(UsableForTracking());
    auto available = cfs::Read(root_ + "/cgroup.controllers");
    if (!available) return FailedPrecondition(root_ + "/cgroup.controllers cannot be read");
    std::istringstream in(*available);
    std::string name;
    while (in >> name) {
      if (name == ControllerName(c)) return {};
    }
    return FailedPrecondition(std::string("the ") + ControllerName(c) +
                              " controller is not available in " + root_ + "/cgroup.controllers");
  }

  Status UsableForTracking() const override { return cfs::Writable(root_); }

  Json Describe() const override {
    Json controllers = DescribeControllers();
    // The root has no cgroup.kill of its own; Linux 5.14+ puts one in every other group.
    return {{"version", "v2"},
            {"controllers", controllers},
            {"killAll", "cgroup.kill, else cgroup.freeze and a signal loop"}};
  }

  Result<CgroupPtr> Create(const std::string& path, const CgroupLimits& limits) override {
    MT_RETURN_IF_ERROR(cfs::CheckGroupPath(path));
    MT_RETURN_IF_ERROR(CheckUsable(limits));

    std::vector<std::string> made;
    auto fail = [&](Error e) -> Result<CgroupPtr> {
      for (auto it = made.rbegin(); it != made.rend(); ++it) cfs::RemoveDir(*it);
      return std::unexpected(std::move(e));
    };
    // Enable the controllers on the way down: the root, then each ancestor of the group.
    std::string enable;
    for (auto c : {CgroupController::kCpu, CgroupController::kMemory, CgroupController::kPids}) {
      if (Usable(c)) enable += std::string(enable.empty() ? "" : " ") + "+" + ControllerName(c);
    }
    std::string dir = root_;
    std::istringstream parts(path);
    std::vector<std::string> components;
    for (std::string part; std::getline(parts, part, '/');) {
      if (!part.empty()) components.push_back(part);
    }
    for (size_t i = 0; i < components.size(); ++i) {
      if (!enable.empty()) {
        if (auto st = cfs::Write(dir + "/cgroup.subtree_control", enable); !st) {
          return fail(Error(Code::kFailedPrecondition,
                            "enabling " + enable + " in " + dir +
                                "/cgroup.subtree_control: " + st.error().message() +
                                (i > 0 ? " (a group that delegates controllers may hold no "
                                         "processes of its own)"
                                       : "")));
        }
      }
      dir += "/" + components[i];
      if (::mkdir(dir.c_str(), 0755) == 0) {
        made.push_back(dir);
      } else if (errno != EEXIST) {
        return fail(ErrnoError("creating " + dir, errno).error());
      }
    }
    auto group = std::make_unique<CgroupV2>(path, dir);
    if (auto st = cfs::CheckVacant(path, group->Pids()); !st) return fail(st.error());
    if (limits.memory_bytes) {
      if (auto st = cfs::Write(dir + "/memory.max", std::to_string(*limits.memory_bytes)); !st) {
        return fail(st.error());
      }
      // No swap on top of the limit: it is met by reclaim and the OOM killer.
      if (cfs::Exists(dir + "/memory.swap.max")) {
        if (auto st = cfs::Write(dir + "/memory.swap.max", "0"); !st) return fail(st.error());
      }
    }
    if (limits.cpu_percent) {
      std::string max =
          std::to_string(CpuQuotaUs(*limits.cpu_percent)) + " " + std::to_string(kCpuPeriodUs);
      if (auto st = cfs::Write(dir + "/cpu.max", max); !st) return fail(st.error());
    }
    if (limits.pids_max) {
      if (auto st = cfs::Write(dir + "/pids.max", std::to_string(*limits.pids_max)); !st) {
        return fail(st.error());
      }
    }
    return CgroupPtr(std::move(group));
  }

  Result<CgroupPtr> Open(const std::string& path) override {
    MT_RETURN_IF_ERROR(cfs::CheckGroupPath(path));
    std::string dir = root_ + "/" + path;
    if (!cfs::Exists(dir)) return NotFound("cgroup " + path + " does not exist");
    return CgroupPtr(std::make_unique<CgroupV2>(path, dir));
  }

  Result<std::vector<Child>> Children(const std::string& parent) override {
    MT_RETURN_IF_ERROR(cfs::CheckGroupPath(parent));
    std::map<std::string, int64_t> found;
    cfs::ListChildDirs(root_ + "/" + parent, parent, found);
    std::vector<Child> out;
    for (const auto& [path, mtime] : found) out.push_back({path, mtime});
    return out;
  }

 private:
  std::string root_;
};

}  // namespace

std::unique_ptr<CgroupHost> CgroupHost::V2(std::string root) {
  return std::make_unique<CgroupV2Backend>(std::move(root));
}

}  // namespace mentat
