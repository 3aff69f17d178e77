// The API server's routes for what only a node's agent serves: a running allocation's logs and
// exec sessions, and a node's agent key, all through the agent proxy (agent_proxy.h).
#include "apis/server/api_server.h"

namespace mentat {

void ApiServer::AgentRoutes() {
  // What only a node's agent serves goes through the server (agent_proxy.h).
  Get("/v1/allocations/:name/logs",
      [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
        agents_->Logs(req, res, who);
      });
  Post("/v1/allocations/:name/exec",
       [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
         agents_->ExecCreate(req, res, who);
       });
  auto session = [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    agents_->ExecSession(req, res, who);
  };
  Get("/v1/exec/:id/output", session);
  Post("/v1/exec/:id/input", session);
  Post("/v1/exec/:id/resize", session);
  Get("/v1/nodes/:name/agentkey",
      [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
        agents_->AgentKey(req, res, who);
      });
}

}  // namespace mentat
