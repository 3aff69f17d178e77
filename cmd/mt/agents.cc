#include "cmd/mt/agents.h"

namespace mentat::mt {

Result<std::string> AgentAddress(ApiClient& server, const std::string& ns, const std::string& alloc) {
  RequestOptions ro;
  ro.ns = ns;
  MT_ASSIGN_OR_RETURN(Json a, server.Get("allocations", alloc, ro));
  std::string node = a.value("spec", Json::object()).value("nodeName", "");
  std::string address;
  if (!node.empty()) {
    auto n = server.Get("nodes", node);
    if (n) address = n->value("status", Json::object()).value("agentAddress", "");
  }
  if (address.empty()) {
    return MakeError(Code::kUnavailable,
                     "allocation " + alloc +
                         (node.empty() ? " is not placed on a node"
                                       : " is on node " + node + ", whose agent publishes no address"));
  }
  return address;
}

}  // namespace mentat::mt
