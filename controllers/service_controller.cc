#include "controllers/service_controller.h"

#include "controllers/events.h"

#include <algorithm>
#include <map>

#include <spdlog/spdlog.h>

namespace mentat {
namespace {

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

// A node counts as Ready when its agent said so and its last heartbeat is recent.
bool NodeReady(const Json& node) {
  const Json& st = node.value("status", Json::object());
  if (!st.value("ready", false)) return false;
  auto hb = ParseTime(st.value("lastHeartbeat", ""));
  return hb && std::chrono::system_clock::now() - *hb < std::chrono::seconds(30);
}

// What an allocation runs: the spec less what only concerns the whole service (how many),
// so that scaling never replaces running allocations.
Json TaskTemplate(const Json& spec) {
  Json t = spec;
  t.erase("count");
  t.erase("scale");
  return t;
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
    bool ready = ev.type != EventType::kDeleted && NodeReady(ev.object);
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
  MT_ASSIGN_OR_RETURN(auto list, store_->List("Service", {}));
  std::vector<std::string> keys;
  for (const auto& s : list.items) keys.push_back(NamespaceOf(s) + "/" + NameOf(s));
  return keys;
}

Result<std::string> ServiceController::PickNode(const std::string& driver, std::string* why_not) {
  MT_ASSIGN_OR_RETURN(auto nodes, store_->List("Node", {}));
  MT_ASSIGN_OR_RETURN(auto allocs, store_->List("Allocation", {}));
  std::map<std::string, int> load;
  for (const auto& a : allocs.items) load[a.value("spec", Json::object()).value("nodeName", "")]++;
  std::string best;
  int not_ready = 0, no_driver = 0;
  for (const auto& n : nodes.items) {
    if (!NodeReady(n)) {
      ++not_ready;
      continue;
    }
    const Json& drivers = n["status"].value("drivers", Json::object());
    if (!drivers.contains(driver) || !drivers[driver].value("healthy", false)) {
      ++no_driver;
      continue;
    }
    if (best.empty() || load[NameOf(n)] < load[best]) best = NameOf(n);
  }
  if (best.empty()) {
    *why_not = std::to_string(0) + "/" + std::to_string(nodes.items.size()) + " nodes available";
    std::vector<std::string> parts;
    if (not_ready) parts.push_back(std::to_string(not_ready) + " not ready");
    if (no_driver) parts.push_back(std::to_string(no_driver) + " lack driver " + driver);
    if (nodes.items.empty()) parts.push_back("no agent has registered");
    for (size_t i = 0; i < parts.size(); ++i) *why_not += (i ? ", " : ": ") + parts[i];
  }
  return best;
}

Result<ReconcileResult> ServiceController::Reconcile(const std::string& key) {
  auto [ns, name] = SplitKey(key);
  ListOptions lo;
  lo.ns = ns;
  MT_ASSIGN_OR_RETURN(lo.selector, LabelSelector::Parse(std::string(kLabelService) + "=" + name));
  MT_ASSIGN_OR_RETURN(auto allocs, store_->List("Allocation", lo));
  std::map<std::string, Json> by_name;
  for (auto& a : allocs.items) {
    std::string aname = NameOf(a);  // read before the move below: operands of = are unordered
    by_name[aname] = std::move(a);
  }

  auto svc = store_->Get({"Service", ns, name});
  if (!svc) {
    if (svc.error().code() != Code::kNotFound) return std::unexpected(svc.error());
    // The service is gone: so are its allocations.
    for (const auto& [aname, a] : by_name) {
      auto st = store_->Delete({"Allocation", ns, aname});
      if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    }
    return ReconcileResult{};
  }
  const Json spec = TaskTemplate((*svc)["spec"]);
  int64_t generation = (*svc)["metadata"].value("generation", int64_t{1});
  int count = (*svc)["spec"].value("count", 1);
  std::string driver = spec.value("driver", "");

  std::string placement_problem;
  bool replacing = false;
  // Slots beyond the count go away; outdated ones are replaced one at a time (max_parallel 1).
  for (const auto& [aname, a] : by_name) {
    int index = a["spec"].value("index", -1);
    bool outdated = a["spec"].value("task", Json()) != spec;
    if (index < 0 || index >= count) {
      auto st = store_->Delete({"Allocation", ns, aname});
      if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    } else if (outdated && !replacing) {
      replacing = true;
      auto st = store_->Delete({"Allocation", ns, aname});
      if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    } else if (outdated) {
      replacing = true;
    }
  }
  for (int i = 0; i < count; ++i) {
    std::string aname = name + "-" + std::to_string(i);
    auto it = by_name.find(aname);
    bool exists = it != by_name.end() && it->second["spec"].value("task", Json()) == spec;
    if (it != by_name.end() && !exists) continue;  // being replaced
    if (exists && !it->second["spec"].value("nodeName", "").empty()) continue;
    std::string why;
    MT_ASSIGN_OR_RETURN(std::string node, PickNode(driver, &why));
    if (node.empty()) placement_problem = why;
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
                    {"task", spec}}}};
    bool placed = false;
    if (exists) {
      // Placing an unplaced allocation: conditional on what we read.
      WriteOptions wo;
      wo.expected_revision = ResourceVersionOf(it->second);
      auto st = store_->Put(alloc, wo);
      if (!st) return std::unexpected(st.error());
      placed = !node.empty();
    } else {
      WriteOptions wo;
      wo.create_only = true;
      auto st = store_->Put(alloc, wo);
      if (!st && st.error().code() != Code::kAlreadyExists) return std::unexpected(st.error());
      placed = st && !node.empty();
      if (st) spdlog::info("service-controller: created allocation {}/{} on node {}", ns, aname,
                           node.empty() ? "(none)" : node);
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
  const Json& last_status = (*svc).value("status", Json::object());
  if (last_status.contains("desiredReplicas") && last_status["desiredReplicas"].is_number_integer() &&
      last_status["desiredReplicas"].get<int>() != count) {
    RecordEvent(store_, *svc, kEventNormal, "Scaled",
                "scaled from " + std::to_string(last_status["desiredReplicas"].get<int>()) + " to " +
                    std::to_string(count) + " replicas",
                "service-controller");
  }

  // Status rollup from the allocations as they are now.
  MT_ASSIGN_OR_RETURN(auto now, store_->List("Allocation", lo));
  int replicas = 0, ready = 0, updated = 0, failed = 0, complete = 0;
  std::string failure;
  for (const auto& a : now.items) {
    if (a["spec"].value("index", -1) >= count) continue;
    ++replicas;
    const Json& st = a.value("status", Json::object());
    bool is_updated = a["spec"].value("task", Json()) == spec;
    if (is_updated) ++updated;
    if (is_updated && st.value("ready", false)) ++ready;
    std::string phase = st.value("phase", "");
    if (is_updated && phase == "Complete") ++complete;
    if (phase == "Failed" || phase == "Restarting") {
      ++failed;
      failure = NameOf(a) + ": " + st.value("message", phase);
    }
  }
  const Json& prev = (*svc).value("status", Json::object()).value("conditions", Json::array());
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
  } else if (failed > 0) {
    phase = "Degraded";
    message = failure;
  } else {
    phase = updated < count ? "Progressing" : "Starting";
    message = std::to_string(ready) + "/" + std::to_string(count) + " ready";
  }
  bool available = ready == count;
  Json status = {
      {"observedGeneration", generation},
      {"desiredReplicas", count},
      {"replicas", replicas},
      {"readyReplicas", ready},
      {"updatedReplicas", updated},
      {"phase", phase},
      {"message", message},
      {"conditions",
       Json::array({MakeCondition("Ready", available, available ? "AllReplicasReady" : phase, message,
                              generation, prev),
                    MakeCondition("Progressing", updated < count || ready < count,
                              updated < count ? "RollingUpdate" : "Stable", message, generation,
                              prev),
                    MakeCondition("Degraded", failed > 0 || !placement_problem.empty(),
                              !placement_problem.empty() ? "PlacementFailed"
                              : failed > 0               ? "AllocationFailing"
                                                         : "Healthy",
                              failed > 0 || !placement_problem.empty() ? message : "", generation,
                              prev)})}};
  Json update = *svc;
  update["status"] = status;
  auto st = store_->UpdateStatus(update);
  if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
  ReconcileResult r;
  // Unplaced allocations retry when a node appears (Node events) and also on a timer, since a
  // node going stale emits no event.
  if (!placement_problem.empty()) r.requeue_after = std::chrono::seconds(5);
  return r;
}

}  // namespace mentat
