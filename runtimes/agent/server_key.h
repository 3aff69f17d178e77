// The agent's side of apis/agent_key.h: the key mentat-server calls this agent with, fetched
// from the server with the node's token (or handed over, for the dev server's in-process
// agent). The agent's endpoints accept that key and no other credential, so no user token
// ever reaches a node; and each answer proves the agent holds it.
#pragma once

#include <mutex>
#include <string>

#include "apis/client.h"
#include "apis/error.h"
#include "apis/server/http_server.h"

namespace mentat {

class ServerKey {
 public:
  void Set(std::string key);
  bool Known() const;

  // Admits a request that carries the key ("Authorization: Bearer KEY"); otherwise
  // kUnauthenticated, or kUnavailable while the agent has no key yet. When admitted, adds the
  // proof of the key for the request's challenge to `res`.
  Status Admit(const HttpRequest& req, HttpResponse& res) const;

  // GET /v1/nodes/NODE/agentkey with the node's token.
  static Result<std::string> Fetch(ApiClient& server, const std::string& node);

 private:
  mutable std::mutex mu_;
  std::string key_;
};

}  // namespace mentat
