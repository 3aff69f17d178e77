// The API routes for what only a node's agent serves: a running allocation's logs and exec
// sessions. As the Kubernetes API server does for kubelets, the server is in the middle: it
// authenticates the user, authorizes the action (operator or admin), finds the allocation's
// node, and calls that node's agent with its own key for the node (agent_keys.h). No user
// credential ever reaches a node.
//
// Where it calls: the address the node's own status writes came from (ObserveNode), with the
// port the agent advertises in status.agentAddress. A node cannot point the server at another
// host by writing its status, and whatever answers must prove it holds the node's key.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/server/agent_keys.h"
#include "apis/server/agent_relay.h"
#include "apis/server/auth.h"
#include "apis/server/exec_session_table.h"
#include "apis/server/http_server.h"
#include "store/store.h"

namespace mentat {

struct AgentProxyOptions {
  AgentRelayOptions relay;
  // An exec session nobody has used for this long is forgotten (its agent has ended it by
  // then: it kills sessions left unread for a minute).
  std::chrono::seconds exec_idle{300};
};

class AgentProxy {
 public:
  AgentProxy(Store* store, const AgentKeys* keys, AgentProxyOptions opts);
  ~AgentProxy() { Stop(); }

  // GET /v1/allocations/NAME/logs: the agent's query (stream, follow, tail, since, offset) and
  // answer (X-Log-Start, the body as it comes), relayed.
  void Logs(const HttpRequest& req, HttpResponse& res, const Principal& who);
  // POST /v1/allocations/NAME/exec: the agent starts the command; the answer's id is this
  // server's id of the session, for `who` alone.
  void ExecCreate(const HttpRequest& req, HttpResponse& res, const Principal& who);
  // GET /v1/exec/ID/output, POST /v1/exec/ID/input and POST /v1/exec/ID/resize.
  void ExecSession(const HttpRequest& req, HttpResponse& res, const Principal& who);
  // GET /v1/nodes/NAME/agentkey: the key NAME's agent accepts, for that node's own token (or
  // an admin). {"node", "key"}.
  void AgentKey(const HttpRequest& req, HttpResponse& res, const Principal& who);

  // A status write of Node `node` is being made by a client at `peer`: that is where its agent
  // is called from now on. Stamps status.observedAddress for all to see; the node cannot set it.
  void ObserveNode(const std::string& node, const std::string& peer, Json& status);

  // Ends every relayed call and waits for them.
  void Stop() { relay_.Stop(); }

 private:
  // Where the agent of the node allocation ns/name runs on is called.
  Result<AgentEndpoint> Locate(const std::string& ns, const std::string& name);
  Result<AgentEndpoint> EndpointOf(const std::string& node);

  Store* store_;
  const AgentKeys* keys_;
  AgentProxyOptions opts_;
  AgentRelay relay_;
  ExecSessionTable sessions_;
  std::mutex mu_;
  std::map<std::string, std::string> observed_;  // node -> the address its status came from
};

}  // namespace mentat
