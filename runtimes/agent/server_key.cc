#include "runtimes/agent/server_key.h"

#include "apis/agent_key.h"

namespace mentat {

void ServerKey::Set(std::string key) {
  std::lock_guard<std::mutex> lock(mu_);
  key_ = std::move(key);
}

bool ServerKey::Known() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !key_.empty();
}

Status ServerKey::Admit(const HttpRequest& req, HttpResponse& res) const {
  std::string key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    key = key_;
  }
  if (key.empty()) {
    return Unavailable("this agent has not fetched its key from the server yet; try again shortly");
  }
  const std::string auth = req.Header("authorization");
  const std::string presented = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
  if (!ConstantTimeEquals(presented, key)) {
    return MakeError(Code::kUnauthenticated,
                     "only mentat-server calls this agent: logs and exec go through the server's "
                     "API (mt logs, mt exec)");
  }
  // Proven only to a caller that holds the key: no one else learns anything from this agent.
  std::string challenge = req.Header("x-mentat-agent-challenge");
  if (!challenge.empty()) res.headers.emplace_back(kAgentProofHeader, AgentProof(key, challenge));
  return {};
}

Result<std::string> ServerKey::Fetch(ApiClient& server, const std::string& node) {
  MT_ASSIGN_OR_RETURN(std::string body, server.GetRaw("/v1/nodes/" + node + "/agentkey"));
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_object() || !j.value("key", Json()).is_string() ||
      j["key"].get<std::string>().empty()) {
    return Internal("the server's answer to GET /v1/nodes/" + node + "/agentkey has no key");
  }
  return j["key"].get<std::string>();
}

}  // namespace mentat
