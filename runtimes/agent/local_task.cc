#include "runtimes/agent/local_task.h"

#include <algorithm>

namespace mentat {

std::string TaskIdForKey(const std::string& key) {
  std::string id = key;
  std::replace(id.begin(), id.end(), '/', '.');
  return id;
}

std::string KeyOfAlloc(const Json& alloc) { return NamespaceOf(alloc) + "/" + NameOf(alloc); }

std::string SpecHash(const Json& task_spec) { return ContentHash(task_spec); }

LogLimits LogLimitsFor(const Json& logs, LogLimits limits) {
  if (!logs.is_object()) return limits;
  if (auto mb = logs.find("max_file_mb"); mb != logs.end() && mb->is_number_integer() && *mb > 0) {
    limits.max_file_bytes = mb->get<int64_t>() << 20;
  }
  if (auto n = logs.find("max_files"); n != logs.end() && n->is_number_integer() && *n >= 0) {
    limits.max_files = n->get<int>();
  }
  return limits;
}

void ResetChecks(LocalTask& t) {
  t.checks.clear();
  for (auto& spec : CheckSpec::ForSpec(t.checks_spec)) {
    CheckState c;
    c.spec = std::move(spec);
    t.checks.push_back(std::move(c));
  }
  t.ready = t.running && t.checks.empty();
}

namespace {

// What a running task's status says while a check does not pass yet.
std::string RunningMessage(const LocalTask& t) {
  for (const auto& c : t.checks) {
    if (c.passing) continue;
    bool implicit = t.checks.size() == 1 && !t.checks_spec.contains("checks");
    return implicit ? "running, waiting for port " + std::to_string(c.spec.port)
           : c.last_error.empty()
               ? "running, waiting for check " + c.spec.Describe()
               : "running, check " + c.spec.Describe() + " failing: " + c.last_error;
  }
  return "running";
}

}  // namespace

Json TaskStatus(const LocalTask& t, const std::string& node, const Json& prev_conditions) {
  Json s = {{"node", node}, {"restarts", t.restarts}, {"ready", t.ready}};
  if (t.running) {
    s["phase"] = "Running";
    s["pid"] = t.pid;
    s["startedAt"] = t.started_at;
    s["message"] = RunningMessage(t);
  } else if (t.restart_pending) {
    s["phase"] = "Restarting";
    s["message"] = t.message;
  } else if (t.last_exit) {
    bool ok = t.last_exit->exit_code && *t.last_exit->exit_code == 0;
    s["phase"] = ok ? "Complete" : "Failed";
    s["message"] = t.message.empty() ? t.last_exit->message : t.message;
  } else {
    s["phase"] = "Pending";
    s["message"] = t.message;
  }
  std::string reason = t.running ? (t.ready ? "Running" : "ChecksNotPassing")
                      : t.restart_pending ? "Restarting"
                      : t.last_exit       ? "Exited"
                                          : "Pending";
  s["conditions"] = Json::array({MakeCondition("Ready", t.ready, reason, s.value("message", ""),
                                               t.generation, prev_conditions)});
  if (t.last_exit) {
    if (t.last_exit->exit_code) s["exitCode"] = *t.last_exit->exit_code;
    if (t.last_exit->signal) s["signal"] = *t.last_exit->signal;
    if (t.last_exit->oom_killed) s["oomKilled"] = true;
  }
  if (t.pids_limit_hits > 0) s["pidsLimitHits"] = t.pids_limit_hits;
  return s;
}

}  // namespace mentat
