// The plan step of the Service controller: what the service and its allocations are now, and
// what a reconcile changes. Apart from recording the spec's revision it writes nothing.
#include "controllers/revisions.h"
#include "controllers/service_controller.h"

namespace mentat {
namespace {

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

// Moves out of `plan.allocations` the slots beyond the count and the allocations lost with
// their node, for apply to delete.
void PlanRemovals(ServicePlan& plan) {
  for (auto it = plan.allocations.begin(); it != plan.allocations.end();) {
    int index = it->second["spec"].value("index", -1);
    if (index >= 0 && index < plan.count) {
      ++it;
      continue;
    }
    plan.beyond_count.push_back(it->first);
    it = plan.allocations.erase(it);
  }
  for (auto it = plan.allocations.begin(); it != plan.allocations.end();) {
    if (it->second.value("status", Json::object()).value("phase", "") != "Lost") {
      ++it;
      continue;
    }
    plan.lost.push_back(std::move(it->second));
    it = plan.allocations.erase(it);
  }
}

// Which slots move to the current template now.
RolloutPlan PlanSlots(const ServicePlan& plan) {
  std::vector<Slot> slots;
  for (int i = 0; i < plan.count; ++i) {
    auto it = plan.allocations.find(plan.SlotName(i));
    if (it == plan.allocations.end()) {
      Slot s;
      s.index = i;
      slots.push_back(s);
    } else {
      bool current = it->second["spec"].value("task", Json()) == plan.task_template;
      slots.push_back(Slot::FromAllocation(i, it->second, current));
    }
  }
  bool halted = plan.rollout.value("state", "") == "Failed";
  return PlanRollout(slots, plan.policy, halted, plan.now);
}

}  // namespace

Result<ServicePlan> ServiceController::Plan(const std::string& key) {
  ServicePlan plan;
  plan.key = key;
  std::tie(plan.ns, plan.name) = SplitKey(key);
  const std::string& ns = plan.ns;
  const std::string& name = plan.name;
  ListOptions lo;
  lo.ns = ns;
  MT_ASSIGN_OR_RETURN(lo.selector, LabelSelector::Parse(std::string(kLabelService) + "=" + name));
  if (cache_) {
    for (const auto& a : cache_->AllocationsOf(ns, name)) plan.allocations[NameOf(*a)] = *a;
  } else {
    MT_ASSIGN_OR_RETURN(auto allocs, store_->List("Allocation", lo));
    for (auto& a : allocs.items) {
      std::string aname = NameOf(a);  // read before the move below: operands of = are unordered
      plan.allocations[aname] = std::move(a);
    }
  }

  Result<Json> svc = MakeError(Code::kNotFound, "service " + key);
  if (!cache_) {
    svc = store_->Get({"Service", ns, name});
  } else if (auto cached = cache_->Get("Service", ns, name)) {
    svc = *cached;
  }
  if (!svc) {
    if (svc.error().code() != Code::kNotFound) return std::unexpected(svc.error());
    plan.service_gone = true;
    return plan;
  }
  plan.service = std::move(*svc);
  const Json& spec = plan.service["spec"];
  plan.task_template = TaskTemplate(spec);
  plan.generation = plan.service["metadata"].value("generation", int64_t{1});
  plan.count = spec.value("count", 1);
  plan.policy = DeployPolicy::FromSpec(spec);
  plan.last_status = plan.service.value("status", Json::object());
  plan.rollout = plan.last_status.value("rollout", Json::object());
  plan.stable_revision = plan.last_status.value("stableRevision", "");
  plan.now = std::chrono::system_clock::now();

  // The revision this spec is; a new one starts a rollout.
  MT_ASSIGN_OR_RETURN(plan.revision, CurrentRevision(plan.service, plan.task_template, plan.rollout,
                                                     plan.stable_revision));
  plan.revision_number = RevisionNumber(plan.revision);
  if (plan.rollout.value("revisionName", "") != NameOf(plan.revision)) {
    plan.rollout = {{"revisionName", NameOf(plan.revision)},
                    {"state", "Progressing"},
                    {"startedAt", NowRfc3339()},
                    {"message", ""}};
  }
  plan.rollout["revision"] = plan.revision_number;

  PlanRemovals(plan);
  plan.rollout_plan = PlanSlots(plan);
  return plan;
}

Result<Json> ServiceController::CurrentRevision(const Json& svc, const Json& tmpl,
                                                const Json& rollout, const std::string& stable) {
  // The common case, a reconcile with no spec change: one point read.
  std::string name = RevisionName(NameOf(svc), tmpl);
  if (rollout.value("revisionName", "") == name) {
    auto r = store_->Get({"ServiceRevision", NamespaceOf(svc), name});
    if (r) return *r;
    if (r.error().code() != Code::kNotFound) return std::unexpected(r.error());
  }
  return EnsureRevision(store_, svc, tmpl, stable);
}

}  // namespace mentat
