#include "controllers/rollout.h"

#include <algorithm>

namespace mentat {
namespace {

using std::chrono::milliseconds;
using TimePoint = std::chrono::system_clock::time_point;

milliseconds DurationOr(const Json& deploy, const char* field, milliseconds fallback) {
  auto it = deploy.find(field);
  if (it == deploy.end() || !it->is_string()) return fallback;
  auto d = ParseDuration(it->get<std::string>());
  return d ? *d : fallback;
}

void Earliest(std::optional<TimePoint>& at, TimePoint t) {
  if (!at || t < *at) at = t;
}

}  // namespace

DeployPolicy DeployPolicy::FromSpec(const Json& spec) {
  DeployPolicy p;
  const Json deploy = spec.value("deploy", Json::object());
  if (!deploy.is_object()) return p;
  p.recreate = deploy.value("strategy", "rolling") == "recreate";
  p.max_parallel = std::max(1, deploy.value("max_parallel", 1));
  p.min_healthy_time = DurationOr(deploy, "min_healthy_time", p.min_healthy_time);
  p.healthy_deadline = DurationOr(deploy, "healthy_deadline", p.healthy_deadline);
  p.auto_revert = deploy.value("auto_revert", false);
  return p;
}

Slot Slot::FromAllocation(int index, const Json& alloc, bool current) {
  Slot s;
  s.index = index;
  s.exists = true;
  s.current = current;
  s.name = NameOf(alloc);
  const Json& meta = alloc.value("metadata", Json::object());
  s.created = ParseTime(meta.value("creationTimestamp", "")).value_or(std::chrono::system_clock::now());
  const Json& st = alloc.value("status", Json::object());
  s.ready = st.value("ready", false);
  s.phase = st.value("phase", "");
  s.message = st.value("message", "");
  for (const auto& c : st.value("conditions", Json::array())) {
    if (c.value("type", "") != "Ready" || c.value("status", "") != "True") continue;
    // Condition times have whole seconds: count from the end of that second, so that
    // min_healthy_time is never cut short.
    if (auto t = ParseTime(c.value("lastTransitionTime", ""))) s.ready_since = *t + std::chrono::seconds(1);
  }
  if (s.ready && !s.ready_since) s.ready_since = s.created + std::chrono::seconds(1);
  return s;
}

RolloutPlan PlanRollout(const std::vector<Slot>& slots, const DeployPolicy& policy, bool halted,
                        TimePoint now) {
  RolloutPlan plan;
  auto healthy = [&](const Slot& s) {
    if (s.phase == "Complete") return true;  // ran to completion: nothing more to wait for
    return s.ready && s.ready_since && *s.ready_since + policy.min_healthy_time <= now;
  };
  // Outdated allocations that still serve count as available; new ones only once healthy.
  auto available = [&](const Slot& s) { return s.exists && s.ready && (!s.current || healthy(s)); };

  std::vector<const Slot*> outdated_ready, outdated_unready;
  for (const auto& s : slots) {
    if (!available(s)) ++plan.unavailable;
    if (s.exists && !s.current) (s.ready ? outdated_ready : outdated_unready).push_back(&s);
    if (!s.exists || !s.current) continue;
    ++plan.updated;
    if (healthy(s)) {
      ++plan.healthy;
      continue;
    }
    TimePoint deadline = s.created + policy.healthy_deadline;
    if (s.phase == "Failed") {
      if (!plan.failure) plan.failure = s.name + " failed: " + s.message;
    } else if (deadline <= now) {
      if (!plan.failure) {
        plan.failure = s.name + " was not healthy within " + FormatDuration(policy.healthy_deadline) +
                       (s.phase.empty() ? "" : " (" + s.phase + (s.message.empty() ? "" : ": " + s.message) + ")");
      }
    } else {
      Earliest(plan.recheck_at, deadline);
      if (s.ready && s.ready_since) Earliest(plan.recheck_at, *s.ready_since + policy.min_healthy_time);
    }
  }
  plan.complete = !slots.empty() && plan.healthy == static_cast<int>(slots.size());
  if (halted || plan.failure) return plan;

  // Unready outdated allocations serve nothing: replacing them costs no availability.
  for (const Slot* s : outdated_unready) plan.replace.push_back(s->index);
  for (const Slot* s : outdated_ready) {
    if (!policy.recreate && plan.unavailable >= policy.max_parallel) break;
    plan.replace.push_back(s->index);
    ++plan.unavailable;
  }
  return plan;
}

}  // namespace mentat
