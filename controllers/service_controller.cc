#include "controllers/service_controller.h"

#include <algorithm>
#include <map>

#include <spdlog/spdlog.h>

#include "controllers/events.h"
#include "controllers/node_controller.h"
#include "controllers/revisions.h"
#include "controllers/rollout.h"
#include "controllers/scheduler.h"

namespace mentat {
namespace {

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace

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
  MT_ASSIGN_OR_RETURN(auto list, store_->List("Service", {}));
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
  auto [ns, name] = SplitKey(key);
  ListOptions lo;
  lo.ns = ns;
  MT_ASSIGN_OR_RETURN(lo.selector, LabelSelector::Parse(std::string(kLabelService) + "=" + name));
  // The service's allocations by name, kept current with this reconcile's own writes.
  std::map<std::string, Json> by_name;
  if (cache_) {
    for (const auto& a : cache_->AllocationsOf(ns, name)) by_name[NameOf(*a)] = *a;
  } else {
    MT_ASSIGN_OR_RETURN(auto allocs, store_->List("Allocation", lo));
    for (auto& a : allocs.items) {
      std::string aname = NameOf(a);  // read before the move below: operands of = are unordered
      by_name[aname] = std::move(a);
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
    // The service is gone: so are its allocations and its history.
    for (const auto& [aname, a] : by_name) {
      auto st = store_->Delete({"Allocation", ns, aname});
      if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    }
    MT_RETURN_IF_ERROR(DeleteRevisions(store_, ns, name));
    return ReconcileResult{};
  }
  const Json& svc_spec = (*svc)["spec"];
  const Json tmpl = TaskTemplate(svc_spec);
  int64_t generation = (*svc)["metadata"].value("generation", int64_t{1});
  int count = svc_spec.value("count", 1);
  const DeployPolicy policy = DeployPolicy::FromSpec(svc_spec);
  const Json& last_status = (*svc).value("status", Json::object());
  Json rollout = last_status.value("rollout", Json::object());
  std::string stable = last_status.value("stableRevision", "");
  auto now = std::chrono::system_clock::now();

  // The revision this spec is; a new one starts a rollout.
  MT_ASSIGN_OR_RETURN(Json revision, CurrentRevision(*svc, tmpl, rollout, stable));
  int64_t rev_number = RevisionNumber(revision);
  if (rollout.value("revisionName", "") != NameOf(revision)) {
    rollout = {{"revisionName", NameOf(revision)},
               {"state", "Progressing"},
               {"startedAt", NowRfc3339()},
               {"message", ""}};
  }
  rollout["revision"] = rev_number;
  const std::string rev_label = "revision " + std::to_string(rev_number);

  // Slots beyond the count go.
  for (auto it = by_name.begin(); it != by_name.end();) {
    int index = it->second["spec"].value("index", -1);
    if (index >= 0 && index < count) {
      ++it;
      continue;
    }
    auto st = store_->Delete({"Allocation", ns, it->first});
    if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    it = by_name.erase(it);
  }

  // Allocations on a node that stopped heartbeating are gone: place them again.
  for (auto it = by_name.begin(); it != by_name.end();) {
    const Json& st = it->second.value("status", Json::object());
    if (st.value("phase", "") != "Lost") {
      ++it;
      continue;
    }
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(it->second);
    auto del = store_->Delete({"Allocation", ns, it->first}, wo);
    if (!del && del.error().code() != Code::kNotFound) return std::unexpected(del.error());
    spdlog::info("service-controller: replacing lost allocation {}/{}", ns, it->first);
    it = by_name.erase(it);
  }

  // Which slots to move to the current template now.
  std::vector<Slot> slots;
  for (int i = 0; i < count; ++i) {
    auto it = by_name.find(name + "-" + std::to_string(i));
    if (it == by_name.end()) {
      Slot s;
      s.index = i;
      slots.push_back(s);
    } else {
      slots.push_back(Slot::FromAllocation(i, it->second, it->second["spec"].value("task", Json()) == tmpl));
    }
  }
  const RolloutPlan plan = PlanRollout(slots, policy, rollout.value("state", "") == "Failed", now);
  std::string replaced;
  for (int i : plan.replace) {
    std::string aname = name + "-" + std::to_string(i);
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(by_name[aname]);
    auto st = store_->Delete({"Allocation", ns, aname}, wo);
    if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    by_name.erase(aname);
    replaced += (replaced.empty() ? "" : ", ") + aname;
  }
  if (!replaced.empty()) {
    RecordEvent(store_, *svc, kEventNormal, "RolloutStep",
                rev_label + ": replacing " + replaced + " (" + std::to_string(plan.updated) + "/" +
                    std::to_string(count) + " updated before this step)",
                "service-controller");
  }

  // Create missing allocations from the current template and place unplaced ones.
  std::string placement_problem;
  std::optional<Scheduler> scheduler;  // made when something needs placing
  PlacementRequest request;
  for (int i = 0; i < count; ++i) {
    std::string aname = name + "-" + std::to_string(i);
    auto it = by_name.find(aname);
    bool exists = it != by_name.end();
    if (exists && !it->second["spec"].value("nodeName", "").empty()) continue;
    // An unplaced allocation of an older template is not worth placing: start it anew.
    if (exists && it->second["spec"].value("task", Json()) != tmpl) {
      auto st = store_->Delete({"Allocation", ns, aname});
      if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
      by_name.erase(it);
      exists = false;
    }
    if (!scheduler) {
      MT_ASSIGN_OR_RETURN(scheduler, MakeScheduler());
      MT_ASSIGN_OR_RETURN(request, RequestFor(key, tmpl));
    }
    std::string why;
    std::string node = scheduler->Place(request, tmpl, &why);
    if (node.empty()) placement_problem = why;
    if (!node.empty()) scheduler->Commit(node, key, tmpl);
    Json labels = {{std::string(kLabelService), name}};
    if (!node.empty()) labels[std::string(kLabelNode)] = node;
    Json alloc = {{"apiVersion", std::string(kApiVersion)},
                  {"kind", "Allocation"},
                  {"metadata", {{"name", aname}, {"namespace", ns}, {"labels", labels}}},
                  {"spec",
                   {{"service", name},
                    {"index", i},
                    {"nodeName", node},
                    {"serviceGeneration", generation},
                    {"revision", rev_number},
                    {"task", tmpl}}}};
    bool placed = false;
    WriteOptions wo;
    if (exists) {
      // Placing an unplaced allocation: conditional on what we read.
      wo.expected_revision = ResourceVersionOf(it->second);
      auto st = store_->Put(alloc, wo);
      if (!st) return std::unexpected(st.error());
      placed = !node.empty();
      by_name[aname] = *st;
    } else {
      wo.create_only = true;
      auto st = store_->Put(alloc, wo);
      if (!st && st.error().code() != Code::kAlreadyExists) return std::unexpected(st.error());
      placed = st && !node.empty();
      if (st) {
        spdlog::info("service-controller: created allocation {}/{} on node {}", ns, aname,
                     node.empty() ? "(none)" : node);
        by_name[aname] = *st;
      } else if (auto existing = store_->Get({"Allocation", ns, aname})) {
        by_name[aname] = *existing;  // the cache had not seen it yet
      }
    }
    if (placed) {
      RecordEvent(store_, alloc, kEventNormal, "Scheduled",
                  "placed " + ns + "/" + aname + " on node " + node, "service-controller");
    }
  }
  if (!placement_problem.empty()) {
    RecordEvent(store_, *svc, kEventWarning, "FailedScheduling",
                "cannot place allocations: " + placement_problem, "service-controller");
  }
  // A change of count since the last rollup is a scale.
  if (last_status.contains("desiredReplicas") && last_status["desiredReplicas"].is_number_integer() &&
      last_status["desiredReplicas"].get<int>() != count) {
    RecordEvent(store_, *svc, kEventNormal, "Scaled",
                "scaled from " + std::to_string(last_status["desiredReplicas"].get<int>()) + " to " +
                    std::to_string(count) + " replicas",
                "service-controller");
  }

  // How the rollout stands. A failed one stays failed (nothing more is replaced) until the spec
  // changes; with auto_revert the spec goes back to the last stable revision.
  std::optional<Json> revert_to;
  if (rollout["state"] == "Progressing") {
    if (plan.failure) {
      std::string why = "rollout of " + rev_label + " failed: " + *plan.failure;
      rollout["state"] = "Failed";
      rollout["finishedAt"] = NowRfc3339();
      RecordOutcome(store_, revision, "Failed", *plan.failure);
      if (policy.auto_revert && !stable.empty() && stable != NameOf(revision)) {
        auto target = store_->Get({"ServiceRevision", ns, stable});
        if (target) {
          revert_to = *target;
          why += "; reverting to revision " + std::to_string(RevisionNumber(*target));
        } else {
          why += "; cannot revert: the last stable revision " + stable + " is gone";
        }
      } else if (policy.auto_revert) {
        why += "; no earlier revision was ever healthy to revert to";
      }
      rollout["message"] = why;
      RecordEvent(store_, *svc, kEventWarning, revert_to ? "RolloutReverted" : "RolloutFailed", why,
                  "service-controller");
    } else if (plan.complete) {
      rollout["state"] = "Complete";
      rollout["finishedAt"] = NowRfc3339();
      rollout["message"] = rev_label + " rolled out: " + std::to_string(count) + "/" +
                           std::to_string(count) + " healthy";
      stable = NameOf(revision);
      RecordOutcome(store_, revision, "Complete", "");
      RecordEvent(store_, *svc, kEventNormal, "RolloutComplete", rollout["message"],
                  "service-controller");
    }
  }

  // Status rollup from the allocations as they are now.
  int replicas = 0, ready = 0, updated = 0, failed = 0, complete = 0, serving = 0;
  std::string failure;
  for (const auto& [aname, a] : by_name) {
    if (a["spec"].value("index", -1) >= count) continue;
    ++replicas;
    const Json& st = a.value("status", Json::object());
    if (st.value("ready", false)) ++serving;  // of any revision
    bool is_updated = a["spec"].value("task", Json()) == tmpl;
    if (is_updated) ++updated;
    if (is_updated && st.value("ready", false)) ++ready;
    std::string phase = st.value("phase", "");
    if (is_updated && phase == "Complete") ++complete;
    if (phase == "Failed" || phase == "Restarting") {
      ++failed;
      failure = NameOf(a) + ": " + st.value("message", phase);
    }
  }
  if (rollout["state"] == "Progressing") {
    rollout["message"] = rev_label + ": " + std::to_string(updated) + "/" + std::to_string(count) +
                         " updated, " + std::to_string(plan.healthy) + " healthy";
  }
  const bool rollout_failed = rollout["state"] == "Failed";
  const Json& prev = last_status.value("conditions", Json::array());
  std::string phase;
  std::string message;
  if (count == 0) {
    phase = "Stopped";
    message = "scaled to zero";
  } else if (complete == count) {
    phase = "Complete";
    message = "all " + std::to_string(count) + " allocations ran to completion";
  } else if (ready == count && updated == count) {
    phase = "Running";
    message = std::to_string(ready) + "/" + std::to_string(count) + " ready";
  } else if (!placement_problem.empty()) {
    phase = "Pending";
    message = "cannot place allocations: " + placement_problem;
  } else if (rollout_failed) {
    phase = "Degraded";
    message = rollout.value("message", "");
  } else if (failed > 0) {
    phase = "Degraded";
    message = failure;
  } else {
    phase = updated < count ? "Progressing" : "Starting";
    message = std::to_string(ready) + "/" + std::to_string(count) + " ready";
  }
  bool available = ready == count;
  const int min_serving = std::max(0, count - policy.max_parallel);
  bool degraded = failed > 0 || !placement_problem.empty() || rollout_failed;
  std::string progress_reason = rollout["state"] == "Progressing" ? "RollingUpdate"
                                : rollout_failed                  ? "RolloutFailed"
                                                                  : "RolloutComplete";
  Json status = {
      {"observedGeneration", generation},
      {"desiredReplicas", count},
      {"replicas", replicas},
      {"readyReplicas", ready},
      {"updatedReplicas", updated},
      {"phase", phase},
      {"message", message},
      {"rollout", rollout},
      {"conditions",
       Json::array({MakeCondition("Ready", available, available ? "AllReplicasReady" : phase, message,
                                  generation, prev),
                    // Kubernetes' minimum availability: a rollout may take max_parallel away.
                    MakeCondition("Available", serving >= min_serving,
                                  serving >= min_serving ? "MinimumReplicasAvailable"
                                                         : "MinimumReplicasUnavailable",
                                  std::to_string(serving) + "/" + std::to_string(count) +
                                      " serving, at least " + std::to_string(min_serving) + " needed",
                                  generation, prev),
                    MakeCondition("Progressing", rollout["state"] == "Progressing", progress_reason,
                                  rollout.value("message", ""), generation, prev),
                    MakeCondition("Degraded", degraded,
                                  !placement_problem.empty() ? "PlacementFailed"
                                  : rollout_failed           ? "RolloutFailed"
                                  : failed > 0               ? "AllocationFailing"
                                                             : "Healthy",
                                  degraded ? message : "", generation, prev)})}};
  if (!stable.empty()) status["stableRevision"] = stable;
  Json update = *svc;
  update["status"] = status;
  auto written = store_->UpdateStatus(update);
  if (!written && written.error().code() != Code::kNotFound) return std::unexpected(written.error());

  if (revert_to && written) {
    // Nomad's auto_revert: the spec becomes the stable revision's template again (count, scale
    // and deploy stay as they are), and that rolls out as a new revision.
    Json reverted = *written;
    reverted["spec"] = WithTaskTemplate(svc_spec, (*revert_to)["spec"]["template"]);
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(*written);
    auto st = store_->Put(reverted, wo);
    if (!st && st.error().code() != Code::kConflict) return std::unexpected(st.error());
    if (st) spdlog::info("service-controller: {}/{} reverted to {}", ns, name, NameOf(*revert_to));
  }

  ReconcileResult r;
  // Unplaced allocations retry when a node appears (Node events) and also on a timer, since a
  // node going stale emits no event. Health milestones of a rollout pass without events too.
  if (!placement_problem.empty()) r.requeue_after = std::chrono::seconds(5);
  if (plan.recheck_at && rollout["state"] == "Progressing") {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*plan.recheck_at - now) +
                std::chrono::milliseconds(50);
    if (!r.requeue_after || wait < *r.requeue_after) r.requeue_after = wait;
  }
  return r;
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
