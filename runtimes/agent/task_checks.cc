// Health checks of the running tasks (health.h): the probe loop submits those that are due to
// the check pool; each result updates its task's readiness and, when it changed, requeues the
// task so that its status says so.
#include <algorithm>

#include "apis/event.h"
#include "runtimes/agent/agent.h"

namespace mentat {
using namespace std::chrono_literals;

std::chrono::steady_clock::time_point Agent::RunDueChecks() {
  auto now = std::chrono::steady_clock::now();
  auto next = now + 200ms;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, t] : tasks_) {
    if (!t.running) continue;
    Driver* driver = DriverFor(t.driver);
    for (size_t i = 0; i < t.checks.size(); ++i) {
      CheckState& c = t.checks[i];
      if (c.in_flight) continue;
      if (now < c.due) {
        next = std::min(next, c.due);
        continue;
      }
      c.in_flight = true;
      c.due = now + c.spec.interval;
      next = std::min(next, c.due);
      checks_->Submit([this, key = key, uid = t.alloc_uid, i, spec = c.spec, driver,
                       id = t.handle.id] { OnCheck(key, uid, i, RunCheck(spec, driver, id)); });
    }
  }
  return next;
}

void Agent::OnCheck(const std::string& key, const std::string& alloc_uid, size_t index,
                    const CheckResult& r) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(key);
  // The task may have been replaced while the check ran: its result is then stale.
  if (it == tasks_.end() || it->second.alloc_uid != alloc_uid || index >= it->second.checks.size()) return;
  LocalTask& t = it->second;
  CheckState& c = t.checks[index];
  c.in_flight = false;
  if (!t.running) return;
  const std::string error_before = c.last_error;
  bool flipped = c.Record(r.ok, r.error);
  bool ready = std::all_of(t.checks.begin(), t.checks.end(), [](const CheckState& s) { return s.passing; });
  if (flipped && !c.passing) {
    bool implicit = !t.checks_spec.contains("checks");
    EmitLocked(key, kEventWarning, "Unhealthy",
               implicit ? "port " + std::to_string(c.spec.port) + " stopped accepting connections"
                        : "check " + c.spec.Describe() + " failed " + std::to_string(c.failures) +
                              " times in a row: " + r.error);
  }
  // A new readiness, or a new reason for failing: the status says it.
  if (flipped || ready != t.ready || c.last_error != error_before) queue_.Add(key);
  t.ready = ready;
}

}  // namespace mentat
