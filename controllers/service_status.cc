// The status step of the Service controller: how the rollout stands (a failed one stays failed
// until the spec changes; with auto_revert the spec goes back to the last stable revision) and
// the Service's status, rolled up from its allocations as apply left them.
#include <spdlog/spdlog.h>

#include "controllers/events.h"
#include "controllers/revisions.h"
#include "controllers/service_controller.h"

namespace mentat {
namespace {

// The allocations of the service's slots, counted.
struct SlotCounts {
  int replicas = 0;
  int ready = 0;    // running the current template and Ready
  int updated = 0;  // running the current template
  int failed = 0;
  int complete = 0;     // of the current template, ran to completion
  int serving = 0;      // Ready, of any revision
  std::string failure;  // the last failing allocation's message
};

SlotCounts CountSlots(const ServicePlan& plan) {
  SlotCounts n;
  for (const auto& [aname, a] : plan.allocations) {
    if (a["spec"].value("index", -1) >= plan.count) continue;
    ++n.replicas;
    const Json& st = a.value("status", Json::object());
    if (st.value("ready", false)) ++n.serving;
    bool is_updated = a["spec"].value("task", Json()) == plan.task_template;
    if (is_updated) ++n.updated;
    if (is_updated && st.value("ready", false)) ++n.ready;
    std::string phase = st.value("phase", "");
    if (is_updated && phase == "Complete") ++n.complete;
    if (phase == "Failed" || phase == "Restarting") {
      ++n.failed;
      n.failure = NameOf(a) + ": " + st.value("message", phase);
    }
  }
  return n;
}

// status.phase and status.message.
std::pair<std::string, std::string> PhaseOf(const ServicePlan& plan, const SlotCounts& n,
                                            const std::string& placement_problem) {
  const int count = plan.count;
  const std::string ready_of = std::to_string(n.ready) + "/" + std::to_string(count) + " ready";
  if (count == 0) return {"Stopped", "scaled to zero"};
  if (n.complete == count) {
    return {"Complete", "all " + std::to_string(count) + " allocations ran to completion"};
  }
  if (n.ready == count && n.updated == count) return {"Running", ready_of};
  if (!placement_problem.empty())
    return {"Pending", "cannot place allocations: " + placement_problem};
  if (plan.rollout["state"] == "Failed") return {"Degraded", plan.rollout.value("message", "")};
  if (n.failed > 0) return {"Degraded", n.failure};
  return {n.updated < count ? "Progressing" : "Starting", ready_of};
}

// The status a rollup writes.
Json StatusOf(const ServicePlan& plan, const SlotCounts& n, const std::string& placement_problem) {
  const int count = plan.count;
  const int64_t generation = plan.generation;
  const Json& rollout = plan.rollout;
  auto [phase, message] = PhaseOf(plan, n, placement_problem);
  const bool rollout_failed = rollout["state"] == "Failed";
  const Json& prev = plan.last_status.value("conditions", Json::array());
  bool available = n.ready == count;
  const int min_serving = std::max(0, count - plan.policy.max_parallel);
  bool degraded = n.failed > 0 || !placement_problem.empty() || rollout_failed;
  std::string progress_reason = rollout["state"] == "Progressing" ? "RollingUpdate"
                                : rollout_failed                  ? "RolloutFailed"
                                                                  : "RolloutComplete";
  Json status = {
      {"observedGeneration", generation},
      {"desiredReplicas", count},
      {"replicas", n.replicas},
      {"readyReplicas", n.ready},
      {"updatedReplicas", n.updated},
      {"phase", phase},
      {"message", message},
      {"rollout", rollout},
      {"conditions",
       Json::array(
           {MakeCondition("Ready", available, available ? "AllReplicasReady" : phase, message,
                          generation, prev),
            // Kubernetes' minimum availability: a rollout may take max_parallel away.
            MakeCondition("Available", n.serving >= min_serving,
                          n.serving >= min_serving ? "MinimumReplicasAvailable"
                                                   : "MinimumReplicasUnavailable",
                          std::to_string(n.serving) + "/" + std::to_string(count) +
                              " serving, at least " + std::to_string(min_serving) + " needed",
                          generation, prev),
            MakeCondition("Progressing", rollout["state"] == "Progressing", progress_reason,
                          rollout.value("message", ""), generation, prev),
            MakeCondition("Degraded", degraded,
                          !placement_problem.empty() ? "PlacementFailed"
                          : rollout_failed           ? "RolloutFailed"
                          : n.failed > 0             ? "AllocationFailing"
                                                     : "Healthy",
                          degraded ? message : "", generation, prev)})}};
  if (!plan.stable_revision.empty()) status["stableRevision"] = plan.stable_revision;
  return status;
}

}  // namespace

std::optional<Json> ServiceController::SettleRollout(ServicePlan& plan) {
  Json& rollout = plan.rollout;
  if (rollout["state"] != "Progressing") return std::nullopt;
  const RolloutPlan& steps = plan.rollout_plan;
  const std::string rev_label = plan.RevisionLabel();
  if (steps.complete && !steps.failure) {
    rollout["state"] = "Complete";
    rollout["finishedAt"] = NowRfc3339();
    rollout["message"] = rev_label + " rolled out: " + std::to_string(plan.count) + "/" +
                         std::to_string(plan.count) + " healthy";
    plan.stable_revision = NameOf(plan.revision);
    RecordOutcome(store_, plan.revision, "Complete", "");
    RecordEvent(store_, plan.service, kEventNormal, "RolloutComplete", rollout["message"],
                "service-controller");
    return std::nullopt;
  }
  if (!steps.failure) return std::nullopt;
  std::string why = "rollout of " + rev_label + " failed: " + *steps.failure;
  rollout["state"] = "Failed";
  rollout["finishedAt"] = NowRfc3339();
  RecordOutcome(store_, plan.revision, "Failed", *steps.failure);
  std::optional<Json> revert_to;
  const std::string& stable = plan.stable_revision;
  if (plan.policy.auto_revert && !stable.empty() && stable != NameOf(plan.revision)) {
    auto target = store_->Get({"ServiceRevision", plan.ns, stable});
    if (target) {
      revert_to = *target;
      why += "; reverting to revision " + std::to_string(RevisionNumber(*target));
    } else {
      why += "; cannot revert: the last stable revision " + stable + " is gone";
    }
  } else if (plan.policy.auto_revert) {
    why += "; no earlier revision was ever healthy to revert to";
  }
  rollout["message"] = why;
  RecordEvent(store_, plan.service, kEventWarning, revert_to ? "RolloutReverted" : "RolloutFailed",
              why, "service-controller");
  return revert_to;
}

Result<ReconcileResult> ServiceController::RollUpStatus(ServicePlan& plan,
                                                        const std::string& placement_problem) {
  std::optional<Json> revert_to = SettleRollout(plan);
  const SlotCounts counts = CountSlots(plan);
  if (plan.rollout["state"] == "Progressing") {
    plan.rollout["message"] = plan.RevisionLabel() + ": " + std::to_string(counts.updated) + "/" +
                              std::to_string(plan.count) + " updated, " +
                              std::to_string(plan.rollout_plan.healthy) + " healthy";
  }
  Json update = plan.service;
  update["status"] = StatusOf(plan, counts, placement_problem);
  auto written = store_->UpdateStatus(update);
  if (!written && written.error().code() != Code::kNotFound)
    return std::unexpected(written.error());

  if (revert_to && written) {
    // Nomad's auto_revert: the spec becomes the stable revision's template again (count, scale
    // and deploy stay as they are), and that rolls out as a new revision.
    Json reverted = *written;
    reverted["spec"] = WithTaskTemplate(plan.service["spec"], (*revert_to)["spec"]["template"]);
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(*written);
    auto st = store_->Put(reverted, wo);
    if (!st && st.error().code() != Code::kConflict) return std::unexpected(st.error());
    if (st)
      spdlog::info("service-controller: {}/{} reverted to {}", plan.ns, plan.name,
                   NameOf(*revert_to));
  }

  ReconcileResult r;
  // Unplaced allocations retry when a node appears (Node events) and also on a timer, since a
  // node going stale emits no event. Health milestones of a rollout pass without events too.
  if (!placement_problem.empty()) r.requeue_after = std::chrono::seconds(5);
  const auto& recheck_at = plan.rollout_plan.recheck_at;
  if (recheck_at && plan.rollout["state"] == "Progressing") {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*recheck_at - plan.now) +
                std::chrono::milliseconds(50);
    if (!r.requeue_after || wait < *r.requeue_after) r.requeue_after = wait;
  }
  return r;
}

}  // namespace mentat
