// The apply step of the Service controller: the plan's deletions, replacements, creations and
// placements, each written conditionally on what the plan read where a race could matter, and
// the events that tell of them.
#include <spdlog/spdlog.h>

#include "controllers/events.h"
#include "controllers/revisions.h"
#include "controllers/service_controller.h"

namespace mentat {
namespace {

// A delete whose object may already be gone.
Status DeleteAllocation(Store* store, const std::string& ns, const std::string& name,
                        const WriteOptions& wo = {}) {
  auto st = store->Delete({"Allocation", ns, name}, wo);
  if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
  return {};
}

WriteOptions AtRevisionOf(const Json& obj) {
  WriteOptions wo;
  wo.expected_revision = ResourceVersionOf(obj);
  return wo;
}

Json AllocationFor(const ServicePlan& plan, int index, const std::string& node) {
  Json labels = {{std::string(kLabelService), plan.name}};
  if (!node.empty()) labels[std::string(kLabelNode)] = node;
  return {
      {"apiVersion", std::string(kApiVersion)},
      {"kind", "Allocation"},
      {"metadata", {{"name", plan.SlotName(index)}, {"namespace", plan.ns}, {"labels", labels}}},
      {"spec",
       {{"service", plan.name},
        {"index", index},
        {"nodeName", node},
        {"serviceGeneration", plan.generation},
        {"revision", plan.revision_number},
        {"task", plan.task_template}}}};
}

}  // namespace

Result<std::string> ServiceController::Apply(ServicePlan& plan) {
  const std::string& ns = plan.ns;
  if (plan.service_gone) {
    // The service is gone: so are its allocations and its history.
    for (const auto& [aname, a] : plan.allocations)
      MT_RETURN_IF_ERROR(DeleteAllocation(store_, ns, aname));
    MT_RETURN_IF_ERROR(DeleteRevisions(store_, ns, plan.name));
    return std::string();
  }
  for (const auto& aname : plan.beyond_count)
    MT_RETURN_IF_ERROR(DeleteAllocation(store_, ns, aname));
  // Allocations on a node that stopped heartbeating are gone: they are placed again below.
  for (const auto& a : plan.lost) {
    MT_RETURN_IF_ERROR(DeleteAllocation(store_, ns, NameOf(a), AtRevisionOf(a)));
    spdlog::info("service-controller: replacing lost allocation {}/{}", ns, NameOf(a));
  }

  const RolloutPlan& rollout = plan.rollout_plan;
  std::string replaced;
  for (int i : rollout.replace) {
    std::string aname = plan.SlotName(i);
    MT_RETURN_IF_ERROR(DeleteAllocation(store_, ns, aname, AtRevisionOf(plan.allocations[aname])));
    plan.allocations.erase(aname);
    replaced += (replaced.empty() ? "" : ", ") + aname;
  }
  if (!replaced.empty()) {
    RecordEvent(store_, plan.service, kEventNormal, "RolloutStep",
                plan.RevisionLabel() + ": replacing " + replaced + " (" +
                    std::to_string(rollout.updated) + "/" + std::to_string(plan.count) +
                    " updated before this step)",
                "service-controller");
  }

  // Create missing allocations from the current template and place unplaced ones.
  Placement placement;
  for (int i = 0; i < plan.count; ++i) MT_RETURN_IF_ERROR(FillSlot(plan, i, placement));
  if (!placement.problem.empty()) {
    RecordEvent(store_, plan.service, kEventWarning, "FailedScheduling",
                "cannot place allocations: " + placement.problem, "service-controller");
  }
  // A change of count since the last rollup is a scale.
  const Json& last = plan.last_status;
  if (last.contains("desiredReplicas") && last["desiredReplicas"].is_number_integer() &&
      last["desiredReplicas"].get<int>() != plan.count) {
    RecordEvent(store_, plan.service, kEventNormal, "Scaled",
                "scaled from " + std::to_string(last["desiredReplicas"].get<int>()) + " to " +
                    std::to_string(plan.count) + " replicas",
                "service-controller");
  }
  return placement.problem;
}

Status ServiceController::FillSlot(ServicePlan& plan, int index, Placement& placement) {
  const std::string& ns = plan.ns;
  std::string aname = plan.SlotName(index);
  auto it = plan.allocations.find(aname);
  bool exists = it != plan.allocations.end();
  if (exists && !it->second["spec"].value("nodeName", "").empty()) return {};
  // An unplaced allocation of an older template is not worth placing: start it anew.
  if (exists && it->second["spec"].value("task", Json()) != plan.task_template) {
    MT_RETURN_IF_ERROR(DeleteAllocation(store_, ns, aname));
    plan.allocations.erase(it);
    exists = false;
  }
  if (!placement.scheduler) {
    MT_ASSIGN_OR_RETURN(placement.scheduler, MakeScheduler());
    MT_ASSIGN_OR_RETURN(placement.request, RequestFor(plan.key, plan.task_template));
  }
  std::string why;
  std::string node = placement.scheduler->Place(placement.request, plan.task_template, &why);
  if (node.empty()) placement.problem = why;
  if (!node.empty()) placement.scheduler->Commit(node, plan.key, plan.task_template);
  Json alloc = AllocationFor(plan, index, node);
  bool placed = false;
  if (exists) {
    // Placing an unplaced allocation: conditional on what we read.
    auto st = store_->Put(alloc, AtRevisionOf(it->second));
    if (!st) return std::unexpected(st.error());
    placed = !node.empty();
    plan.allocations[aname] = *st;
  } else {
    WriteOptions wo;
    wo.create_only = true;
    auto st = store_->Put(alloc, wo);
    if (!st && st.error().code() != Code::kAlreadyExists) return std::unexpected(st.error());
    placed = st && !node.empty();
    if (st) {
      spdlog::info("service-controller: created allocation {}/{} on node {}", ns, aname,
                   node.empty() ? "(none)" : node);
      plan.allocations[aname] = *st;
    } else if (auto existing = store_->Get({"Allocation", ns, aname})) {
      plan.allocations[aname] = *existing;  // the cache had not seen it yet
    }
  }
  if (placed) {
    RecordEvent(store_, alloc, kEventNormal, "Scheduled",
                "placed " + ns + "/" + aname + " on node " + node, "service-controller");
  }
  return {};
}

}  // namespace mentat
