#include "runtimes/hull/inspect.h"

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "runtimes/cgroups/cgroups.h"
#include "runtimes/isolation/namespaces.h"

namespace mentat::hull {
namespace {

// The first 12 mounts of PID 1's namespace, breadth first: the root, the mounts on it (/proc, /dev, the volumes), then
// the mounts on those; not the kernel's order, which is the order they were made (hull
// clones the devices before /dev exists).
Json FirstMounts(pid_t pid) {
  struct Mount {
    Json json;
    std::vector<size_t> children;
  };
  std::vector<Mount> all;
  std::map<std::string, size_t> by_id;
  std::vector<std::pair<std::string, size_t>> parents;
  std::ifstream mi("/proc/" + std::to_string(pid) + "/mountinfo");
  for (std::string line; std::getline(mi, line);) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
    std::istringstream w(line);
    std::string id, parent, dev, root, point, opts, word;
    w >> id >> parent >> dev >> root >> point >> opts;
    while (w >> word && word != "-") {
    }
    std::string type, source;
    w >> type >> source;
    by_id[id] = all.size();
    parents.emplace_back(parent, all.size());
    all.push_back({{{"mountpoint", point}, {"type", type}, {"source", source}, {"options", opts}}, {}});
  }
  std::vector<size_t> roots;
  for (const auto& [parent, i] : parents) {
    auto p = by_id.find(parent);
    if (p == by_id.end() || p->second == i) {
      roots.push_back(i);  // the root's parent is outside the namespace
    } else {
      all[p->second].children.push_back(i);
    }
  }
  Json mounts = Json::array();
  std::vector<size_t> queue = roots;
  for (size_t at = 0; at < queue.size() && mounts.size() < 12; ++at) {
    mounts.push_back(all[queue[at]].json);
    queue.insert(queue.end(), all[queue[at]].children.begin(), all[queue[at]].children.end());
  }
  return mounts;
}

}  // namespace

Json InspectState(const ContainerState& s) {
  Json j = {{"name", s.name},
            {"status", s.status},
            {"pid", s.pid},
            {"started_at", s.started_at},
            {"argv", s.manifest.argv},
            {"profile", s.manifest.profile},
            {"network", s.manifest.network},
            {"hostname", s.manifest.hostname.empty() ? s.name : s.manifest.hostname},
            {"rootfs", s.manifest.rootfs},
            {"root", s.root},
            {"manifest", s.manifest.ToJson()}};
  if (s.status == "running") {
    j["uptime_seconds"] = static_cast<int64_t>(std::time(nullptr)) - s.started_at;
  }
  if (s.rootless_uid >= 0) j["rootless"] = {{"uid", s.rootless_uid}, {"gid", s.rootless_gid}};
  if (!s.ip.empty()) {
    j["bridge"] = {{"name", s.manifest.bridge.name}, {"ip", s.ip}, {"host_veth", s.host_veth},
                   {"mtu", s.manifest.bridge.mtu}};
  }
  if (!s.warnings.empty()) j["warnings"] = s.warnings;
  if (s.exit) {
    j["exit"] = s.exit->ToJson();
    j["exit"]["description"] = s.exit->Describe();
    j["finished_at"] = s.finished_at;
  }
  Json cg = {{"path", s.cgroup}, {"version", s.cgroup_version}};
  if (s.status == "running" && !s.cgroup.empty()) {
    if (auto g = CgroupHost::Probe()->Open(s.cgroup)) {
      if (auto l = (*g)->Limits()) {
        Json limits = Json::object();
        limits["memory_bytes"] = l->memory_bytes ? Json(*l->memory_bytes) : Json(nullptr);
        limits["cpu_percent"] = l->cpu_percent ? Json(*l->cpu_percent) : Json(nullptr);
        limits["pids_max"] = l->pids_max ? Json(*l->pids_max) : Json(nullptr);
        cg["limits"] = limits;
      }
      if (auto st = (*g)->Stats()) {
        cg["usage"] = {{"memory_bytes", st->memory_bytes},
                       {"memory_peak_bytes", st->memory_peak_bytes},
                       {"cpu_usage_ns", st->cpu_usage_ns},
                       {"pids", st->pids},
                       {"pids_limit_hits", st->pids_limit_hits}};
      }
    }
  }
  j["cgroup"] = cg;
  if (s.status == "running") {
    // Every namespace of PID 1, and whether it is the container's own or the host's (ours).
    int own = 0;
    Json ns = NamespaceInodes(s.pid, &own);
    j["namespaces"] = ns;
    j["own_namespaces"] = own;
    j["mounts"] = FirstMounts(s.pid);
  }
  return j;
}

}  // namespace mentat::hull
