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

Result<std::string> AllocationLogTail(ApiClient& server, const ClientOptions& co,
                                      const std::string& ns, const std::string& alloc,
                                      const std::string& stream, int lines) {
  MT_ASSIGN_OR_RETURN(std::string address, AgentAddress(server, ns, alloc));
  MT_ASSIGN_OR_RETURN(auto agent, ApiClient::Create(address, co));
  return agent->GetRaw("/v1/allocations/" + alloc + "/logs?namespace=" + ns + "&stream=" + stream +
                       "&tail=" + std::to_string(lines));
}

}  // namespace mentat::mt
