// What the probe loop samples of the running tasks once a second, and what artifact garbage
// collection asks: log sizes for the time index and rotation, pids-limit hits, and the
// artifacts the tasks of this node use.
#include <spdlog/spdlog.h>

#include "apis/event.h"
#include "runtimes/agent/agent.h"
#include "runtimes/logs/log_index.h"
#include "runtimes/logs/log_writer.h"

namespace mentat {

void Agent::SampleLimits() {
  // Only tasks with a pids limit: reading every task's cgroup each second would cost the idle
  // node CPU for nothing.
  std::vector<std::tuple<std::string, Driver*, std::string>> limited;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, t] : tasks_) {
      if (t.running && t.pids_limit > 0) limited.emplace_back(key, DriverFor(t.driver), t.handle.id);
    }
  }
  for (const auto& [key, driver, id] : limited) {
    if (!driver) continue;
    auto stats = driver->Stats(id);
    if (!stats) continue;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(key);
    if (it == tasks_.end() || stats->pids_limit_hits <= it->second.pids_limit_hits) continue;
    uint64_t more = stats->pids_limit_hits - it->second.pids_limit_hits;
    it->second.pids_limit_hits = stats->pids_limit_hits;
    EmitLocked(key, kEventWarning, "PidsLimitReached",
               "the pids limit of " + std::to_string(it->second.pids_limit) + " refused " +
                   std::to_string(more) + " fork(s) (" + std::to_string(stats->pids_limit_hits) +
                   " in all)");
    queue_.Add(key);
  }
}

void Agent::SampleLogs() {
  struct Sampled {
    std::string dir;
    LogLimits limits;
    Driver* driver;
    std::string id;
  };
  std::vector<Sampled> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, t] : tasks_) {
      tasks.push_back({handles_.TaskDir(key), t.logs, DriverFor(t.driver), t.handle.id});
    }
  }
  const int64_t now_ns = RealtimeNs();
  for (const auto& task : tasks) {
    // A relay or the docker driver's pump indexes and rotates its task's logs itself.
    if (task.driver && !task.id.empty()) {
      if (auto logs = task.driver->Logs(task.id); logs && logs->self_indexed) continue;
    }
    for (const char* stream : {"stdout", "stderr"}) {
      std::string log = task.dir + "/" + stream + ".log", index = task.dir + "/" + stream + ".idx";
      SampleLogSize(log, index, now_ns);
      std::string warning;
      if (auto rotated = RotateLog(log, index, task.limits, &warning); !rotated) {
        spdlog::warn("agent: {}", rotated.error().message());
      } else if (*rotated) {
        spdlog::debug("agent: rotated {}", log);
      }
      if (!warning.empty()) spdlog::warn("agent: {}", warning);
    }
  }
}

std::optional<std::set<std::string>> Agent::ArtifactsInUse() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!synced_) return std::nullopt;  // an allocation placed here may not be known yet
  std::set<std::string> used;
  // Placed here, whether started, waiting to restart, or failing to start.
  for (const auto& [key, alloc] : desired_) {
    std::string digest = ArtifactOf(alloc.value("spec", Json::object()).value("task", Json()));
    if (!digest.empty()) used.insert(digest);
  }
  // Running, recovered from a handle, or exited and not yet removed.
  for (const auto& [key, t] : tasks_) {
    if (t.artifact) {
      if (!t.artifact->empty()) used.insert(*t.artifact);
      continue;
    }
    // A handle from before agents recorded the artifact: its allocation's spec says, while it
    // is the spec the task runs; otherwise nobody can tell, and nothing is removed.
    auto it = desired_.find(key);
    if (it == desired_.end()) return std::nullopt;
    Json task_spec = it->second.value("spec", Json::object()).value("task", Json());
    if (SpecHash(task_spec) != t.spec_hash) return std::nullopt;
  }
  return used;
}

}  // namespace mentat
