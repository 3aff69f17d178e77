// The agent's own HTTP endpoints: an allocation's logs (log_endpoint.h) and exec into its running
// task (exec_sessions.h). Every request must carry the server's key (server_key.h); the agent
// tells this class which tasks run and where their directories are, nothing more.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "apis/server/http_server.h"
#include "runtimes/agent/exec_sessions.h"
#include "runtimes/agent/server_key.h"
#include "runtimes/driver.h"

namespace mentat {

struct AgentEndpointsOptions {
  std::string listen;  // HOST:PORT, port 0 for any
  std::string tls_cert, tls_key;  // both set: https
  std::string advertise;  // the URL the server reaches it at; default from the bound address
  std::string node_name;  // for messages
  // The driver and task id of the allocation "ns/name" while its task runs.
  struct RunningTask {
    Driver* driver;
    std::string task_id;
  };
  std::function<std::optional<RunningTask>(const std::string& key)> running_task;
  // The directory of the allocation's task, where its logs are.
  std::function<std::string(const std::string& key)> task_dir;
};

class AgentEndpoints {
 public:
  // Binds and starts serving. `key` outlives the endpoints; until it is known, every request is
  // refused as unavailable.
  static Result<std::unique_ptr<AgentEndpoints>> Start(AgentEndpointsOptions opts,
                                                      const ServerKey& key);
  // Ends the exec sessions (their commands end with the agent; workloads do not).
  ~AgentEndpoints();

  // What the Node's status advertises as agentAddress.
  const std::string& address() const { return address_; }
  // Reaps finished and abandoned exec sessions; called periodically.
  void Sweep() { exec_sessions_->Sweep(); }
  // Stops serving requests (exec sessions live on until destruction).
  void StopServing() { http_->Stop(); }

 private:
  AgentEndpoints(AgentEndpointsOptions opts, const ServerKey& key)
      : opts_(std::move(opts)), server_key_(key) {}
  // GET /v1/allocations/NAME/logs: both streams merged in order, or one.
  void ServeLogs(const HttpRequest& req, HttpResponse& res);
  // POST /v1/allocations/NAME/exec: starts a command in the running task, then
  // GET /v1/exec/ID/output, POST /v1/exec/ID/input and POST /v1/exec/ID/resize.
  void ServeExecCreate(const HttpRequest& req, HttpResponse& res);
  void ServeExecSession(const HttpRequest& req, HttpResponse& res);

  AgentEndpointsOptions opts_;
  const ServerKey& server_key_;  // the only credential the endpoints accept
  std::string address_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<ExecSessions> exec_sessions_;  // after http_: it posts to the server's loop
};

}  // namespace mentat
