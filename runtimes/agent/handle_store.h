// The agent's persisted record of its tasks, under <data_dir>/tasks/<task id>/: handle.json (the
// driver's handle and what recovery needs of the spec) and the `starting` marker of orphans.h.
// A restarted agent reads the handles back to re-attach to its workloads instead of restarting
// them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "runtimes/agent/local_task.h"

namespace mentat {

class HandleStore {
 public:
  explicit HandleStore(std::string data_dir) : tasks_dir_(std::move(data_dir) + "/tasks") {}

  // The task's directory: its handle, its marker, and (for most drivers) its logs.
  std::string TaskDir(const std::string& key) const;

  // Persists the task's handle, atomically (write, fsync, rename).
  Status WriteHandle(const std::string& key, const LocalTask& t) const;

  struct Persisted {
    std::string key;
    LocalTask task;  // as written; not yet recovered through its driver (running = false)
  };
  // Every readable handle; `default_logs` fills in the log limits a handle does not set.
  std::vector<Persisted> ReadHandles(const LogLimits& default_logs) const;

  // The `starting` marker, written before a driver starts the task and cleared once its handle
  // is persisted.
  Status WriteMarker(const std::string& key, const std::string& task_id) const;
  void ClearMarker(const std::string& key) const;
  // Hands the task id of each marker a crash left behind to `kill_orphans`, then removes it.
  void SweepMarkers(const std::function<void(const std::string& task_id)>& kill_orphans) const;

  // Removes the task's directory (its allocation is gone from this node).
  void Remove(const std::string& key) const;

 private:
  std::string tasks_dir_;
};

}  // namespace mentat
