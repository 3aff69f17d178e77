#include "controllers/service_controller.h"

#include "controllers/node_controller.h"
#include "controllers/registry.h"

namespace mentat {

std::vector<std::string> ServiceController::KeysFor(const WatchEvent& ev) {
  const std::string kind = ev.object.value("kind", "");
  if (kind == "Service") return {NamespaceOf(ev.object) + "/" + NameOf(ev.object)};
  if (kind == "Allocation") {
    std::string svc = LabelOf(ev.object, kLabelService);
    if (!svc.empty()) return {NamespaceOf(ev.object) + "/" + svc};
    return {};
  }
  if (kind == "Node") {
    // Heartbeats arrive every few seconds; only a change of readiness can change placement.
    bool ready = ev.type != EventType::kDeleted && NodeIsReady(ev.object, heartbeat_timeout_);
    {
      std::lock_guard<std::mutex> lock(nodes_mu_);
      auto [it, inserted] = node_ready_.emplace(NameOf(ev.object), ready);
      if (!inserted && it->second == ready) return {};
      it->second = ready;
    }
    auto keys = AllKeys();
    return keys ? *keys : std::vector<std::string>{};
  }
  return {};
}

Result<std::vector<std::string>> ServiceController::AllKeys() {
  if (cache_) {
    std::vector<std::string> keys;
    for (const auto& s : cache_->List("Service")) keys.push_back(NamespaceOf(*s) + "/" + NameOf(*s));
    return keys;
  }
  // Which keys to look at (each reconcile reads its own): this member's state does.
  MT_ASSIGN_OR_RETURN(auto list, store_->List("Service", {.local = true}));
  std::vector<std::string> keys;
  for (const auto& s : list.items) keys.push_back(NamespaceOf(s) + "/" + NameOf(s));
  return keys;
}

Result<Scheduler> ServiceController::MakeScheduler() {
  std::vector<const Json*> nodes, allocs;
  if (cache_) {
    auto node_objs = cache_->List("Node");
    auto alloc_objs = cache_->List("Allocation");
    for (const auto& n : node_objs) nodes.push_back(n.get());
    for (const auto& a : alloc_objs) allocs.push_back(a.get());
    return Scheduler(nodes, allocs, heartbeat_timeout_);
  }
  MT_ASSIGN_OR_RETURN(auto node_list, store_->List("Node", {}));
  MT_ASSIGN_OR_RETURN(auto alloc_list, store_->List("Allocation", {}));
  for (const auto& n : node_list.items) nodes.push_back(&n);
  for (const auto& a : alloc_list.items) allocs.push_back(&a);
  return Scheduler(nodes, allocs, heartbeat_timeout_);
}

Result<PlacementRequest> ServiceController::RequestFor(const std::string& key, const Json& tmpl) {
  PlacementRequest req;
  req.service = key;
  req.driver = tmpl.value("driver", "");
  req.profile = tmpl.value("security", Json::object()).value("profile", "");
  if (!req.profile.empty()) {
    // The profile's allowed_nodes constrain placement (seed 001: exec-internal only on nodes
    // labelled internal-only). Admission already checked that the profile exists.
    auto profile = store_->Get({"SecurityProfile", "", req.profile});
    if (!profile && profile.error().code() != Code::kNotFound) return std::unexpected(profile.error());
    if (profile) {
      for (const auto& l : (*profile)["spec"].value("allowed_nodes", Json::array())) {
        if (l.is_string()) req.allowed_nodes.push_back(l);
      }
    }
  }
  return req;
}

Result<ReconcileResult> ServiceController::Reconcile(const std::string& key) {
  MT_ASSIGN_OR_RETURN(ServicePlan plan, Plan(key));
  MT_ASSIGN_OR_RETURN(std::string placement_problem, Apply(plan));
  if (plan.service_gone) return ReconcileResult{};
  return RollUpStatus(plan, placement_problem);
}

MENTAT_REGISTER_CONTROLLER(service_controller, [](const ControllerContext& ctx) -> ReconcilerPtr {
  return std::make_unique<ServiceController>(ctx.store, ctx.node_lifecycle.heartbeat_timeout,
                                             ctx.cache);
});

}  // namespace mentat
