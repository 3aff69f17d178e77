// The Node kind: a machine running an agent, cluster-scoped. The agent writes it (its status
// is the heartbeat and the drivers it fingerprinted); its spec is stored as written.
#include "apis/kinds/node.h"

#include "apis/kind_registry.h"

namespace mentat {

std::string NodeStatus(const Json& node) {
  const Json& st = MapAt(node, "status");
  if (!st.contains("lastHeartbeat")) return "Unknown";
  auto hb = ParseTime(st.value("lastHeartbeat", ""));
  bool fresh = hb && std::chrono::system_clock::now() - *hb < std::chrono::seconds(30);
  return st.value("ready", false) && fresh ? "Ready" : "NotReady";
}

namespace {

const Json& Status(const Json& o) { return MapAt(o, "status"); }

// Drivers that fingerprinted healthy; an unhealthy one is shown with a '!'.
std::string Drivers(const Json& o) {
  std::string drivers;
  const Json fingerprint = Status(o).value("drivers", Json::object());
  for (auto it = fingerprint.begin(); it != fingerprint.end(); ++it) {
    bool healthy = it.value().is_object() && it.value().value("healthy", false);
    drivers += (drivers.empty() ? "" : ",") + it.key() + (healthy ? "" : "!");
  }
  return drivers.empty() ? "<none>" : drivers;
}
std::string Heartbeat(const Json& o) {
  std::string hb = Status(o).value("lastHeartbeat", "");
  return hb.empty() ? "<never>" : AgeOf(hb) + " ago";
}
std::string Cpus(const Json& o) {
  const Json capacity = Status(o).value("capacity", Json::object());
  return capacity.contains("cpus") ? capacity["cpus"].dump() : "";
}

constexpr std::string_view kShortNames[] = {"no"};
constexpr PrinterColumn kColumns[] = {
    {"NAME", false, NameOf}, {"STATUS", false, NodeStatus}, {"DRIVERS", false, Drivers},
    {"AGE", false, Age},     {"HEARTBEAT", true, Heartbeat}, {"CPUS", true, Cpus},
};

const KindRegistration kRegistered({
    .kind = "Node",
    .plural = "nodes",
    .namespaced = false,
    .rank = 30,
    .short_names = kShortNames,
    .columns = kColumns,
});

}  // namespace
}  // namespace mentat
