// What the agent knows of one task it runs: the record behind each Allocation placed on this
// node, the Allocation status it reports for it, and the small rules both follow. Shared by the
// sync loop, the task runner, the checks and the handle store; it holds no locks itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "apis/object.h"
#include "runtimes/agent/health.h"
#include "runtimes/driver.h"
#include "runtimes/logs/log_rotate.h"

namespace mentat {

struct LocalTask {
  std::string driver;
  TaskHandle handle;
  std::string alloc_uid;
  std::string spec_hash;
  // The artifact its rootfs names ("sha256:...", "" for none); nullopt when recovered from a
  // handle written before agents recorded it (then its allocation's spec says).
  std::optional<std::string> artifact;
  int64_t generation = 1;
  int port = 0;
  Json checks_spec = Json::object();  // {port, checks} of the spec: persisted for recovery
  LogLimits logs;
  int64_t pids_limit = 0;         // spec resources.pids; 0: none
  uint64_t pids_limit_hits = 0;   // forks its pids limit refused, as last read
  std::vector<CheckState> checks;     // Ready needs every one passing
  std::string restart_policy = "always";
  bool running = false;
  bool ready = false;
  int pid = 0;
  int restarts = 0;
  std::string started_at;
  std::optional<ExitResult> last_exit;
  std::string message;
  std::chrono::steady_clock::time_point started_mono;
  std::chrono::steady_clock::time_point restart_at;  // when a restart is due
  bool restart_pending = false;
  int backoff_exp = 0;
  bool adopted_event_due = false;  // recovered from its handle: say so once its Allocation is known
};

// The task id of the allocation "ns/name" ("ns.name"): names its directory and its processes.
std::string TaskIdForKey(const std::string& key);

// The "ns/name" key of an Allocation.
std::string KeyOfAlloc(const Json& alloc);

// A change detector for a task's spec (not a security hash).
std::string SpecHash(const Json& task_spec);

// The spec's (or a persisted handle's) `logs: {max_file_mb, max_files}` over the agent's defaults.
LogLimits LogLimitsFor(const Json& logs, LogLimits limits);

// (Re)arms a task's checks from checks_spec when it starts or is recovered: all failing.
void ResetChecks(LocalTask& t);

// The Allocation status of a task on `node`; `prev_conditions` (as last written) keep each
// condition's lastTransitionTime.
Json TaskStatus(const LocalTask& t, const std::string& node, const Json& prev_conditions);

}  // namespace mentat
