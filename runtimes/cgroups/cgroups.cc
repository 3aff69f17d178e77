#include "runtimes/cgroups/cgroups.h"

#include <sys/statfs.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace mentat {

const char* ControllerName(CgroupController c) {
  switch (c) {
    case CgroupController::kMemory:
      return "memory";
    case CgroupController::kCpu:
      return "cpu";
    case CgroupController::kPids:
      return "pids";
  }
  return "?";
}

int64_t CpuQuotaUs(int64_t cpu_percent) {
  // The kernel refuses quotas under 1 ms.
  return std::max<int64_t>(1000, cpu_percent * kCpuPeriodUs / 100);
}

Json CgroupHost::DescribeControllers() const {
  Json controllers = Json::object();
  for (auto c : {CgroupController::kMemory, CgroupController::kCpu, CgroupController::kPids}) {
    auto st = Usable(c);
    controllers[ControllerName(c)] = st ? "ok" : st.error().message();
  }
  return controllers;
}

Status CgroupHost::CheckUsable(const CgroupLimits& limits) const {
  if (limits.memory_bytes) MT_RETURN_IF_ERROR(Usable(CgroupController::kMemory));
  if (limits.cpu_percent) MT_RETURN_IF_ERROR(Usable(CgroupController::kCpu));
  if (limits.pids_max) MT_RETURN_IF_ERROR(Usable(CgroupController::kPids));
  return UsableForTracking();
}

int JoinCgroupInChild(const std::vector<int>& procs_fds) noexcept {
  for (int fd : procs_fds) {
    // "0" is the writer itself, in v1 and v2 alike: no pid formatting in the child.
    ssize_t n;
    do {
      n = ::write(fd, "0", 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno;
  }
  return 0;
}

std::unique_ptr<CgroupHost> CgroupHost::Probe(const std::string& mount_root) {
  struct statfs fs {};
  if (::statfs(mount_root.c_str(), &fs) == 0 &&
      static_cast<unsigned long>(fs.f_type) == CGROUP2_SUPER_MAGIC) {
    return V2(mount_root);
  }
  // v1 or hybrid: each controller's hierarchy, from mountinfo. Fields: ... mount-point (5th)
  // ... " - " fstype source super-options; the super options name the controllers.
  static const std::set<std::string> wanted = {"memory", "cpu", "cpuacct", "pids", "freezer"};
  std::map<std::string, std::string> mounts;
  std::ifstream info("/proc/self/mountinfo");
  for (std::string line; std::getline(info, line);) {
    auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream pre(line.substr(0, sep)), post(line.substr(sep + 3));
    std::string id, parent, devno, root, mount_point, fstype, source, options;
    if (!(pre >> id >> parent >> devno >> root >> mount_point)) continue;
    if (!(post >> fstype >> source >> options) || fstype != "cgroup") continue;
    if (mount_point.rfind(mount_root + "/", 0) != 0) continue;
    std::istringstream opts(options);
    for (std::string opt; std::getline(opts, opt, ',');) {
      if (wanted.count(opt) && !mounts.count(opt)) mounts[opt] = mount_point;
    }
  }
  return V1(std::move(mounts));
}

}  // namespace mentat
