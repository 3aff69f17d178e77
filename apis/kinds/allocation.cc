// The Allocation kind: one replica of a Service placed on a node. The control plane writes it,
// in canonical form; its spec is stored as written.
#include "apis/kind_registry.h"

namespace mentat {
namespace {

const Json& Spec(const Json& o) { return MapAt(o, "spec"); }
const Json& Status(const Json& o) { return MapAt(o, "status"); }

std::string Service(const Json& o) { return Spec(o).value("service", ""); }
std::string Node(const Json& o) {
  std::string node = Spec(o).value("nodeName", "");
  return node.empty() ? "<none>" : node;
}
std::string Phase(const Json& o) { return Status(o).value("phase", "Pending"); }
std::string Restarts(const Json& o) { return std::to_string(Status(o).value("restarts", 0)); }
std::string Pid(const Json& o) {
  return Status(o).contains("pid") ? std::to_string(Status(o).value("pid", 0)) : "";
}
std::string Message(const Json& o) { return Status(o).value("message", ""); }

constexpr std::string_view kShortNames[] = {"alloc", "allocs"};
constexpr PrinterColumn kColumns[] = {
    {"NAME", false, NameOf},   {"SERVICE", false, Service},   {"NODE", false, Node},
    {"STATUS", false, Phase},  {"RESTARTS", false, Restarts}, {"AGE", false, Age},
    {"PID", true, Pid},        {"MESSAGE", true, Message},
};

const KindRegistration kRegistered({
    .kind = "Allocation",
    .plural = "allocations",
    .namespaced = true,
    .rank = 20,
    .short_names = kShortNames,
    .columns = kColumns,
});

}  // namespace
}  // namespace mentat
