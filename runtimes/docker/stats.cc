// A docker task's usage: Docker's stats (memory, CPU, pids) and the forks its pids limit
// refused, read from the container's pids cgroup.
#include "runtimes/docker/docker_driver.h"

#include <fstream>

namespace mentat {

namespace {

// The pids cgroup's refused forks (pids.events "max N") of the process `pid`.
uint64_t PidsLimitHits(int pid) {
  if (pid <= 0) return 0;
  std::ifstream cg("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, dir;
  while (std::getline(cg, line)) {
    // "4:pids:/docker/ID" (v1) or "0::/system.slice/docker-ID.scope" (v2).
    auto c1 = line.find(':');
    auto c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (controllers == "pids") dir = "/sys/fs/cgroup/pids" + path;
    else if (controllers.empty() && dir.empty()) dir = "/sys/fs/cgroup" + path;
  }
  std::ifstream ev(dir + "/pids.events");
  std::string key;
  uint64_t n = 0;
  while (ev >> key >> n) {
    if (key == "max") return n;
  }
  return 0;
}

}  // namespace

Result<TaskStats> DockerDriver::Stats(const std::string& id) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  MT_ASSIGN_OR_RETURN(Json s, engine_->Stats(t->container));
  TaskStats out;
  const Json& mem = s.value("memory_stats", Json::object());
  out.memory_bytes = mem.value("usage", uint64_t{0});
  out.memory_peak_bytes = mem.value("max_usage", uint64_t{0});
  out.cpu_usage_ns = s.value("cpu_stats", Json::object()).value("cpu_usage", Json::object()).value("total_usage", uint64_t{0});
  out.pids = s.value("pids_stats", Json::object()).value("current", uint64_t{0});
  out.pids_limit_hits = PidsLimitHits(t->pid);
  return out;
}

}  // namespace mentat
