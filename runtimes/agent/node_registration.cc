#include "runtimes/agent/node_registration.h"

#include <spdlog/spdlog.h>

namespace mentat {

// Labels that place workloads (a profile's allowed_nodes, e.g. internal-only) are the admins' to
// set: the server refuses them from a node token, naming each. The node is written without
// those changes then (each kept as `before` has it), so that a --label the server refuses does
// not keep the node from registering.
Status NodeRegistration::PutNode(Json node, const Json& before) {
  auto written = client_->Put("nodes", node_name_, node.dump());
  if (written) return {};
  if (written.error().code() != Code::kForbidden) return std::unexpected(written.error());
  static const std::string prefix = "metadata.labels.";
  bool dropped = false;
  for (const auto& d : written.error().details()) {
    if (d.field.rfind(prefix, 0) != 0) continue;
    std::string key = d.field.substr(prefix.size());
    spdlog::warn("agent: label {} of node {} not set: {}", key, node_name_, d.message);
    Json& labels = node["metadata"]["labels"];
    if (before.contains(key)) {
      labels[key] = before[key];
    } else {
      labels.erase(key);
    }
    dropped = true;
  }
  if (!dropped) return std::unexpected(written.error());
  auto again = client_->Put("nodes", node_name_, node.dump());
  if (!again) return std::unexpected(again.error());
  return {};
}

Status NodeRegistration::EnsureNode() {
  if (registered_) return {};
  auto existing = client_->Get("nodes", node_name_);
  if (!existing) {
    if (existing.error().code() != Code::kNotFound) return std::unexpected(existing.error());
    Json node = {{"apiVersion", std::string(kApiVersion)},
                 {"kind", "Node"},
                 {"metadata", {{"name", node_name_}, {"labels", labels_}}},
                 {"spec", Json::object()}};
    MT_RETURN_IF_ERROR(PutNode(std::move(node), Json::object()));
  } else {
    // Labels set by others stay; ours are added or corrected.
    Json labels = (*existing)["metadata"].value("labels", Json::object());
    Json merged = labels;
    for (const auto& [k, v] : labels_) merged[k] = v;
    if (merged != labels) {
      Json node = *existing;
      node["metadata"]["labels"] = merged;
      node.erase("status");
      MT_RETURN_IF_ERROR(PutNode(std::move(node), labels));
    }
  }
  registered_ = true;
  return {};
}

Status NodeRegistration::Heartbeat(const Json& status) {
  std::lock_guard<std::mutex> lock(mu_);
  MT_RETURN_IF_ERROR(EnsureNode());
  Json s = status;
  s["ready"] = true;
  s["conditions"] = Json::array({MakeCondition("Ready", true, "AgentHeartbeat",
                                               "the agent is posting heartbeats", 0, conditions_)});
  s["lastHeartbeat"] = NowRfc3339();
  Json node = {{"kind", "Node"}, {"metadata", {{"name", node_name_}}}, {"status", s}};
  auto written = client_->PutStatus("nodes", node_name_, node);
  if (!written) {
    if (written.error().code() == Code::kNotFound) registered_ = false;  // recreate next time
    return std::unexpected(written.error());
  }
  conditions_ = s["conditions"];
  return {};
}

}  // namespace mentat
