#include "runtimes/cgroups/cgroups.h"

#include "runtimes/cgroups/cgroup_fs.h"

#include <sys/statfs.h>
#include <unistd.h>

#include <map>
#include <string_view>

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
  // ... " - " fstype source super-options; the super options name the controllers. Read whole
  // and split by hand: `hull run` probes on every start, and a stream per line cost it 0.2 ms.
  static constexpr std::string_view kWanted[] = {"memory", "cpu", "cpuacct", "pids", "freezer"};
  std::map<std::string, std::string> mounts;
  auto info = cgroupfs::Read("/proc/self/mountinfo");
  std::string_view rest = info ? std::string_view(*info) : std::string_view();
  auto next_word = [](std::string_view& line) {
    size_t start = line.find_first_not_of(' ');
    if (start == std::string_view::npos) return std::string_view();
    size_t end = line.find(' ', start);
    std::string_view word = line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    line = end == std::string_view::npos ? std::string_view() : line.substr(end);
    return word;
  };
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    size_t sep = line.find(" - ");
    if (sep == std::string_view::npos) continue;
    std::string_view pre = line.substr(0, sep), post = line.substr(sep + 3);
    std::string_view mount_point;
    for (int field = 0; field < 5; ++field) mount_point = next_word(pre);
    std::string_view fstype = next_word(post);
    next_word(post);  // source
    std::string_view options = next_word(post);
    if (fstype != "cgroup" || options.empty()) continue;
    if (mount_point.size() <= mount_root.size() || !mount_point.starts_with(mount_root) ||
        mount_point[mount_root.size()] != '/') {
      continue;
    }
    while (!options.empty()) {
      size_t comma = options.find(',');
      std::string_view opt = options.substr(0, comma);
      options = comma == std::string_view::npos ? std::string_view() : options.substr(comma + 1);
      for (std::string_view w : kWanted) {
        if (opt == w && !mounts.count(std::string(w))) mounts.emplace(std::string(w), std::string(mount_point));
      }
    }
  }
  return V1(std::move(mounts));
}

}  // namespace mentat
