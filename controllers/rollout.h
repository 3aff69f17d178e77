// How a Service's spec change rolls out across its allocation slots (seed deploy.strategy,
// after Nomad's update stanza and Kubernetes' maxUnavailable):
//   - rolling: replace outdated allocations while at most max_parallel slots are unavailable.
//     A new allocation counts as healthy once it has been Ready for min_healthy_time; one that
//     is not healthy within healthy_deadline of its creation (or that failed) fails the rollout.
//   - recreate: replace every outdated allocation at once.
// PlanRollout is a pure function of the slots and the clock, so the policy is tested alone.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "apis/object.h"

namespace mentat {

struct DeployPolicy {
  bool recreate = false;
  int max_parallel = 1;
  std::chrono::milliseconds min_healthy_time{10000};
  std::chrono::milliseconds healthy_deadline{300000};
  bool auto_revert = false;

  // From a canonical Service spec's `deploy` (defaults when absent).
  static DeployPolicy FromSpec(const Json& spec);
};

// One allocation slot of a service: index i is the allocation "<service>-<i>".
struct Slot {
  int index = 0;
  bool exists = false;
  bool current = false;  // runs the current template
  bool ready = false;
  std::string phase;      // the agent's phase: Running, Failed, Restarting, ...
  std::string message;    // the agent's message
  std::string name;
  std::chrono::system_clock::time_point created;
  std::optional<std::chrono::system_clock::time_point> ready_since;

  // From an Allocation object; `current` is decided by the caller.
  static Slot FromAllocation(int index, const Json& alloc, bool current);
};

struct RolloutPlan {
  std::vector<int> replace;  // slots whose outdated allocation goes now (a new one replaces it)
  int updated = 0;           // slots running the current template
  int healthy = 0;           // ... and healthy (Ready for min_healthy_time)
  int unavailable = 0;       // slots with no Ready allocation, after the replacements above
  bool complete = false;     // every slot runs the current template and is healthy
  std::optional<std::string> failure;  // why the rollout failed
  // When the plan may change with no event: a ready allocation passes min_healthy_time or a
  // pending one its deadline.
  std::optional<std::chrono::system_clock::time_point> recheck_at;
};

// `halted`: the rollout already failed; nothing more is replaced.
RolloutPlan PlanRollout(const std::vector<Slot>& slots, const DeployPolicy& policy, bool halted,
                        std::chrono::system_clock::time_point now);

}  // namespace mentat
