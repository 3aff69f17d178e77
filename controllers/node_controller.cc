#include "controllers/node_controller.h"

#include <spdlog/spdlog.h>

#include "controllers/events.h"

namespace mentat {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string Seconds(std::chrono::system_clock::duration d) {
  return std::to_string(duration_cast<std::chrono::seconds>(d).count()) + "s";
}

}  // namespace

bool NodeIsReady(const Json& node, milliseconds heartbeat_timeout,
                 std::chrono::system_clock::time_point now) {
  const Json& st = node.value("status", Json::object());
  if (!st.value("ready", false)) return false;
  auto hb = ParseTime(st.value("lastHeartbeat", ""));
  // Heartbeat times have whole seconds: allow for the one that was cut.
  return hb && now - *hb < heartbeat_timeout + std::chrono::seconds(1);
}

std::vector<std::string> NodeController::KeysFor(const WatchEvent& ev) {
  if (ev.type == EventType::kDeleted || ev.object.value("kind", "") != "Node") return {};
  return {NameOf(ev.object)};
}

Result<std::vector<std::string>> NodeController::AllKeys() {
  // Which keys to look at (each reconcile reads its own): this member's state does.
  MT_ASSIGN_OR_RETURN(auto list, store_->List("Node", {.local = true}));
  std::vector<std::string> keys;
  for (const auto& n : list.items) keys.push_back(NameOf(n));
  return keys;
}

Result<ReconcileResult> NodeController::Reconcile(const std::string& name) {
  auto node = store_->Get({"Node", "", name});
  if (!node) {
    if (node.error().code() == Code::kNotFound) return ReconcileResult{};
    return std::unexpected(node.error());
  }
  const Json& st = node->value("status", Json::object());
  auto hb = ParseTime(st.value("lastHeartbeat", ""));
  if (!hb) return ReconcileResult{};  // registered, never heartbeated: nothing to time out
  // Heartbeat times have whole seconds: count from the end of that second, never early.
  auto silent = std::chrono::system_clock::now() - (*hb + std::chrono::seconds(1));
  ReconcileResult r;

  if (silent >= opts_.heartbeat_timeout && st.value("ready", false)) {
    // The agent would say Ready until it stops talking; say what we know instead.
    Json update = *node;
    std::string message = "no heartbeat from the agent for " + Seconds(silent);
    update["status"]["ready"] = false;
    update["status"]["conditions"] = Json::array(
        {MakeCondition("Ready", false, "HeartbeatMissed", message, 0,
                       st.value("conditions", Json::array()))});
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(*node);  // a heartbeat just in wins
    auto written = store_->UpdateStatus(update, wo);
    if (!written) {
      if (written.error().code() == Code::kConflict) return ReconcileResult{};  // it is back
      return std::unexpected(written.error());
    }
    spdlog::warn("node-controller: node {} is NotReady: {}", name, message);
    RecordEvent(store_, *node, kEventWarning, "NodeNotReady", message, "node-controller");
  }

  if (silent >= opts_.lost_after) {
    // Its allocations are lost: the Service controller places them again elsewhere.
    MT_ASSIGN_OR_RETURN(auto allocs, store_->List("Allocation", {}));
    for (auto& a : allocs.items) {
      if (a["spec"].value("nodeName", "") != name) continue;
      if (a.value("status", Json::object()).value("phase", "") == "Lost") continue;
      std::string message = "node " + name + " has sent no heartbeat for " + Seconds(silent);
      a["status"] = {{"phase", "Lost"}, {"ready", false}, {"node", name}, {"message", message}};
      WriteOptions wo;
      wo.expected_revision = ResourceVersionOf(a);
      auto written = store_->UpdateStatus(a, wo);
      if (!written && written.error().code() != Code::kConflict &&
          written.error().code() != Code::kNotFound) {
        return std::unexpected(written.error());
      }
      if (written) RecordEvent(store_, a, kEventWarning, "AllocationLost", message, "node-controller");
    }
  } else {
    // Nothing marks time passing but the clock: look again when the next threshold is due.
    auto next = silent < opts_.heartbeat_timeout ? opts_.heartbeat_timeout - silent
                                                 : opts_.lost_after - silent;
    r.requeue_after = duration_cast<milliseconds>(next) + milliseconds(50);
  }
  return r;
}

MENTAT_REGISTER_CONTROLLER(node_controller, [](const ControllerContext& ctx) -> ReconcilerPtr {
  return std::make_unique<NodeController>(ctx.store, ctx.node_lifecycle);
});

}  // namespace mentat
