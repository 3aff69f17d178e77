// The cgroup v1 backend: one hierarchy per controller (memory, cpu, cpuacct, pids, freezer),
// each possibly mounted on its own directory or co-mounted with others ("cpu,cpuacct"). A group
// is the same relative path made in every hierarchy that is writable.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <thread>

#include "runtimes/cgroups/cgroup_fs.h"
#include "runtimes/cgroups/cgroups.h"

namespace mentat {
namespace {

namespace cfs = cgroupfs;
using namespace std::chrono_literals;

// The hierarchies a group joins: enforcement (memory, cpu, pids), accounting (cpuacct) and
// the freezer, only to thaw a group an older agent left frozen (KillAll says why it is not used).
constexpr const char* kControllers[] = {"memory", "cpu", "cpuacct", "pids", "freezer"};

class CgroupV1 : public Cgroup {
 public:
  // `dirs`: controller -> this group's directory in that controller's hierarchy.
  CgroupV1(std::string path, std::map<std::string, std::string> dirs)
      : path_(std::move(path)), dirs_(std::move(dirs)) {
    std::set<std::string> unique;
    for (auto& [c, d] : dirs_) {
      if (unique.insert(d).second) hierarchies_.push_back(d);
    }
  }

  const std::string& path() const override { return path_; }

  Status AddProcess(pid_t pid) override {
    for (const auto& d : hierarchies_) {
      MT_RETURN_IF_ERROR(cfs::Write(d + "/cgroup.procs", std::to_string(pid)));
    }
    return {};
  }

  Result<std::vector<int>> OpenProcsFiles() override {
    // `tasks`, not cgroup.procs: the joining child is single-threaded, so moving its one thread
    // moves the process; and a cgroup.procs write takes the global threadgroup rwsem for
    // writing, which waits out an RCU grace period per hierarchy (about 3-15 ms each here,
    // most of a sandbox's start).
    return cfs::OpenForWriting(JoinFiles());
  }

  std::vector<std::string> JoinFiles() const override {
    std::vector<std::string> files;
    for (const auto& d : hierarchies_) files.push_back(d + "/tasks");
    return files;
  }

  Result<std::vector<pid_t>> Pids() override {
    std::set<pid_t> all;
    for (const auto& d : hierarchies_) {
      auto pids = cfs::ReadPids(d + "/cgroup.procs");
      if (!pids && pids.error().code() == Code::kNotFound) continue;  // removed meanwhile
      if (!pids) return std::unexpected(pids.error());
      all.insert(pids->begin(), pids->end());
    }
    return std::vector<pid_t>(all.begin(), all.end());
  }

  Result<CgroupStats> Stats() override {
    CgroupStats s;
    if (auto d = Dir("memory")) {
      MT_ASSIGN_OR_RETURN(auto cur, cfs::ReadUint(*d + "/memory.usage_in_bytes"));
      MT_ASSIGN_OR_RETURN(auto peak, cfs::ReadUint(*d + "/memory.max_usage_in_bytes"));
      s.memory_bytes = cur.value_or(0);
      s.memory_peak_bytes = peak.value_or(0);
    }
    if (auto d = Dir("cpuacct")) {
      MT_ASSIGN_OR_RETURN(auto ns, cfs::ReadUint(*d + "/cpuacct.usage"));
      s.cpu_usage_ns = ns.value_or(0);
    }
    MT_RETURN_IF_ERROR(cfs::ReadPidCounts(Dir("pids"), [this] { return Pids(); }, &s.pids, &s.pids_limit_hits));
    return s;
  }

  Result<CgroupLimits> Limits() override {
    CgroupLimits l;
    if (auto d = Dir("memory")) {
      MT_ASSIGN_OR_RETURN(auto bytes, cfs::ReadUint(*d + "/memory.limit_in_bytes"));
      // Unlimited reads as the largest page-aligned value (PAGE_COUNTER_MAX pages).
      if (bytes && *bytes < (uint64_t{1} << 62)) l.memory_bytes = static_cast<int64_t>(*bytes);
    }
    if (auto d = Dir("cpu")) {
      MT_ASSIGN_OR_RETURN(std::string quota, cfs::Read(*d + "/cpu.cfs_quota_us"));
      MT_ASSIGN_OR_RETURN(auto period, cfs::ReadUint(*d + "/cpu.cfs_period_us"));
      int64_t q = std::strtoll(quota.c_str(), nullptr, 10);
      if (q > 0 && period && *period > 0) l.cpu_percent = q * 100 / static_cast<int64_t>(*period);
    }
    if (auto d = Dir("pids")) {
      MT_ASSIGN_OR_RETURN(auto max, cfs::ReadUint(*d + "/pids.max"));
      if (max) l.pids_max = static_cast<int64_t>(*max);
    }
    return l;
  }

  Result<uint64_t> OomKills() override {
    auto d = Dir("memory");
    if (!d) return uint64_t{0};
    // "oom_kill N" is in memory.oom_control since Linux 4.13.
    auto n = cfs::ReadKey(*d + "/memory.oom_control", "oom_kill");
    if (!n && n.error().code() == Code::kNotFound && cfs::Exists(*d)) {
      return FailedPrecondition("this kernel does not count OOM kills in memory.oom_control");
    }
    return n;
  }

  Status KillAll() override {
    // While pids.max is 0 no member can fork, so the signal loop catches every one: a tree
    // cannot outrun it. Not the v1 freezer: a frozen task dies only once thawed, so a killer
    // that dies between FROZEN and THAWED (an agent SIGKILLed while it stops a task) would
    // leave the tree frozen and unkillable, and whatever waits for it would hang for good.
    std::optional<std::string> old_max;
    if (auto d = Dir("pids")) {
      auto max = cfs::Read(*d + "/pids.max");
      if (max && cfs::Write(*d + "/pids.max", "0")) old_max = max->substr(0, max->find('\n'));
    }
    // A group frozen by an agent of before this change, which died before it thawed it.
    if (auto freezer = Dir("freezer")) {
      auto state = cfs::Read(*freezer + "/freezer.state");
      if (state && state->rfind("THAWED", 0) != 0) cfs::Write(*freezer + "/freezer.state", "THAWED");
    }
    Status killed = cfs::KillUntilEmpty([this] { return Pids(); }, 5s, "killing cgroup " + path_);
    // The group may be used again: its limit comes back.
    if (old_max) cfs::Write(*Dir("pids") + "/pids.max", *old_max);
    return killed;
  }

  Status Destroy() override {
    for (const auto& d : hierarchies_) MT_RETURN_IF_ERROR(cfs::RemoveDir(d));
    return {};
  }

 private:
  std::optional<std::string> Dir(const std::string& controller) const {
    auto it = dirs_.find(controller);
    if (it == dirs_.end()) return std::nullopt;
    return it->second;
  }

  std::string path_;
  std::map<std::string, std::string> dirs_;
  std::vector<std::string> hierarchies_;  // distinct directories, in a fixed order
};

class CgroupV1Backend : public CgroupHost {
 public:
  explicit CgroupV1Backend(std::map<std::string, std::string> mounts)
      : mounts_(std::move(mounts)) {}

  std::string Version() const override { return "v1"; }

  Status Usable(CgroupController c) const override { return UsableByName(ControllerName(c)); }

  Status UsableForTracking() const override {
    for (const char* c : {"freezer", "memory", "pids", "cpu", "cpuacct"}) {
      if (UsableByName(c)) return {};
    }
    return FailedPrecondition("no cgroup v1 hierarchy (memory, cpu, pids, freezer) is writable");
  }

  Json Describe() const override {
    Json controllers = DescribeControllers();
    return {{"version", "v1"},
            {"controllers", controllers},
            {"killAll", UsableByName("pids") ? "pids.max 0 and a signal loop" : "signal loop"}};
  }

  Result<CgroupPtr> Create(const std::string& path, const CgroupLimits& limits) override {
    MT_RETURN_IF_ERROR(cfs::CheckGroupPath(path));
    MT_RETURN_IF_ERROR(CheckUsable(limits));

    std::map<std::string, std::string> dirs;
    std::vector<std::string> made;
    auto fail = [&](Error e) -> Result<CgroupPtr> {
      for (auto it = made.rbegin(); it != made.rend(); ++it) cfs::RemoveDir(*it);
      return std::unexpected(std::move(e));
    };
    for (const char* c : kControllers) {
      if (!UsableByName(c)) continue;
      const std::string& mount = mounts_.at(c);
      if (auto st = cfs::MakeDirs(mount, path, &made); !st) return fail(st.error());
      dirs[c] = mount + "/" + path;
    }
    auto group = std::make_unique<CgroupV1>(path, dirs);
    // A group this call made in every hierarchy is empty: the kernel makes them so. Only one
    // that was already there may hold somebody else's processes.
    const bool all_new = std::all_of(dirs.begin(), dirs.end(), [&](const auto& d) {
      return std::find(made.begin(), made.end(), d.second) != made.end();
    });
    if (!all_new) {
      if (auto st = cfs::CheckVacant(path, group->Pids()); !st) return fail(st.error());
    }
    if (limits.memory_bytes) {
      const std::string& d = dirs.at("memory");
      std::string bytes = std::to_string(*limits.memory_bytes);
      // memory+swap must stay >= memory: lift it, set memory, then pin memory+swap to the same
      // value so the limit is met by reclaim and the OOM killer, never by swapping.
      bool memsw = cfs::Exists(d + "/memory.memsw.limit_in_bytes");
      if (memsw) {
        if (auto st = cfs::Write(d + "/memory.memsw.limit_in_bytes", "-1"); !st)
          return fail(st.error());
      }
      if (auto st = cfs::Write(d + "/memory.limit_in_bytes", bytes); !st) return fail(st.error());
      if (memsw) {
        if (auto st = cfs::Write(d + "/memory.memsw.limit_in_bytes", bytes); !st)
          return fail(st.error());
      }
    }
    if (limits.cpu_percent) {
      const std::string& d = dirs.at("cpu");
      if (auto st = cfs::Write(d + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)); !st) {
        return fail(st.error());
      }
      if (auto st =
              cfs::Write(d + "/cpu.cfs_quota_us", std::to_string(CpuQuotaUs(*limits.cpu_percent)));
          !st) {
        return fail(st.error());
      }
    }
    if (limits.pids_max) {
      if (auto st = cfs::Write(dirs.at("pids") + "/pids.max", std::to_string(*limits.pids_max));
          !st) {
        return fail(st.error());
      }
    }
    return CgroupPtr(std::move(group));
  }

  Result<CgroupPtr> Open(const std::string& path) override {
    MT_RETURN_IF_ERROR(cfs::CheckGroupPath(path));
    std::map<std::string, std::string> dirs;
    for (const char* c : kControllers) {
      auto it = mounts_.find(c);
      if (it == mounts_.end()) continue;
      std::string d = it->second + "/" + path;
      if (cfs::Exists(d)) dirs[c] = d;
    }
    if (dirs.empty()) return NotFound("cgroup " + path + " does not exist");
    return CgroupPtr(std::make_unique<CgroupV1>(path, std::move(dirs)));
  }

  Result<std::vector<Child>> Children(const std::string& parent) override {
    MT_RETURN_IF_ERROR(cfs::CheckGroupPath(parent));
    std::map<std::string, int64_t> found;
    for (const char* c : kControllers) {
      auto it = mounts_.find(c);
      if (it != mounts_.end()) cfs::ListChildDirs(it->second + "/" + parent, parent, found);
    }
    std::vector<Child> out;
    for (const auto& [path, mtime] : found) out.push_back({path, mtime});
    return out;
  }

 private:
  Status UsableByName(const std::string& c) const {
    auto it = mounts_.find(c);
    if (it == mounts_.end())
      return FailedPrecondition("the cgroup v1 " + c + " controller is not mounted");
    return cfs::Writable(it->second);
  }

  std::map<std::string, std::string> mounts_;
};

}  // namespace

std::unique_ptr<CgroupHost> CgroupHost::V1(std::map<std::string, std::string> mounts) {
  return std::make_unique<CgroupV1Backend>(std::move(mounts));
}

}  // namespace mentat
