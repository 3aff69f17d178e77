#include "runtimes/agent/endpoints.h"

#include <unistd.h>

#include "apis/object.h"
#include "runtimes/agent/log_endpoint.h"

namespace mentat {
namespace {

// The owner of every exec session on this agent: the server, which binds each one to the
// user that made it (apis/server/exec_session_table.h).
constexpr const char* kSessionOwner = "mentat-server";

void SendApiError(HttpResponse& res, const Error& e) {
  res.status = e.HttpStatus();
  res.content_type = "application/json";
  res.body = e.ToJson().dump() + "\n";
}

// The "ns/name" key of the allocation a request names (?namespace=, the :name segment), each
// a DNS label: they become paths under the data dir.
Result<std::string> RequestedKey(const HttpRequest& req) {
  std::string ns = req.Param("namespace").empty() ? std::string(kDefaultNamespace) : req.Param("namespace");
  std::string name = req.matches[0];
  for (const auto& [field, value] : {std::pair<std::string, std::string>{"namespace", ns}, {"name", name}}) {
    if (!IsDnsLabel(value)) {
      return MakeError(Code::kInvalidArgument, "invalid " + field,
                       {{field, 0, 0, "must be a DNS label, got \"" + value + "\""}});
    }
  }
  return ns + "/" + name;
}

}  // namespace

Result<std::unique_ptr<AgentEndpoints>> AgentEndpoints::Start(AgentEndpointsOptions opts,
                                                              const ServerKey& key) {
  auto colon = opts.listen.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("--listen must be HOST:PORT, got " + opts.listen);
  HttpServerOptions ho;
  ho.host = opts.listen.substr(0, colon);
  ho.port = std::atoi(opts.listen.c_str() + colon + 1);
  ho.workers = 4;
  ho.tls_cert = opts.tls_cert;
  ho.tls_key = opts.tls_key;
  std::unique_ptr<AgentEndpoints> e(new AgentEndpoints(std::move(opts), key));
  e->http_ = std::make_unique<HttpServer>(ho);
  // Every endpoint admits the server's key alone (server_key.h).
  auto admitted = [self = e.get()](void (AgentEndpoints::*serve)(const HttpRequest&, HttpResponse&)) {
    return [self, serve](const HttpRequest& req, HttpResponse& res) {
      if (auto st = self->server_key_.Admit(req, res); !st) return SendApiError(res, st.error());
      (self->*serve)(req, res);
    };
  };
  e->http_->Route("GET", "/v1/allocations/:name/logs", admitted(&AgentEndpoints::ServeLogs));
  e->http_->Route("POST", "/v1/allocations/:name/exec", admitted(&AgentEndpoints::ServeExecCreate));
  e->http_->Route("GET", "/v1/exec/:id/output", admitted(&AgentEndpoints::ServeExecSession));
  e->http_->Route("POST", "/v1/exec/:id/input", admitted(&AgentEndpoints::ServeExecSession));
  e->http_->Route("POST", "/v1/exec/:id/resize", admitted(&AgentEndpoints::ServeExecSession));
  e->exec_sessions_ = std::make_unique<ExecSessions>(e->http_.get(), ExecSessionLimits{});
  MT_ASSIGN_OR_RETURN(int port, e->http_->Start());
  e->address_ = !e->opts_.advertise.empty()
                    ? e->opts_.advertise
                    : std::string(e->opts_.tls_cert.empty() ? "http" : "https") + "://" + ho.host +
                          ":" + std::to_string(port);
  return e;
}

AgentEndpoints::~AgentEndpoints() { exec_sessions_.reset(); }

void AgentEndpoints::ServeExecCreate(const HttpRequest& req, HttpResponse& res) {
  auto key = RequestedKey(req);
  if (!key) return SendApiError(res, key.error());
  auto options = ParseExecRequest(req.body);
  if (!options) return SendApiError(res, options.error());
  auto task = opts_.running_task(*key);
  if (!task || !task->driver) {
    return SendApiError(res, Error(Code::kNotFound, "allocation " + *key +
                                                        " is not running on node " + opts_.node_name));
  }
  auto id = exec_sessions_->Create(*task->driver, task->task_id, *options, kSessionOwner);
  if (!id) {
    Error e = id.error();
    // The driver could not start it (no such file, not executable): the command is at fault.
    if (e.code() == Code::kInvalidArgument && e.details().empty()) {
      e.mutable_details().push_back({"command[0]", 0, 0, e.message()});
    }
    return SendApiError(res, e);
  }
  res.status = 201;
  res.body = Json{{"id", *id}}.dump() + "\n";
}

void AgentEndpoints::ServeExecSession(const HttpRequest& req, HttpResponse& res) {
  const std::string token = kSessionOwner;
  const std::string& id = req.matches[0];
  std::string what = req.path.substr(req.path.rfind('/') + 1);
  Status st;
  if (what == "output") {
    st = exec_sessions_->Attach(id, token, res);
  } else if (what == "input") {
    std::string eof = req.Param("eof");
    if (eof != "" && eof != "true" && eof != "false") {
      return SendApiError(res, Error(Code::kInvalidArgument, "invalid eof",
                                     {{"eof", 0, 0, "true or false, got \"" + eof + "\""}}));
    }
    st = exec_sessions_->Input(id, token, req.body, eof == "true");
  } else {
    auto size = ParseResizeRequest(req.body);
    if (!size) return SendApiError(res, size.error());
    st = exec_sessions_->Resize(id, token, size->first, size->second);
  }
  if (!st) return SendApiError(res, st.error());
  if (!res.stream) res.body = "{}\n";
}

void AgentEndpoints::ServeLogs(const HttpRequest& req, HttpResponse& res) {
  auto key = RequestedKey(req);
  if (!key) return SendApiError(res, key.error());
  auto query = ParseLogsQuery(req);
  if (!query) return SendApiError(res, query.error());
  const std::string dir = opts_.task_dir(*key);
  if (::access((dir + "/stdout.log").c_str(), F_OK) != 0) {
    return SendApiError(
        res, NotFound("no logs for allocation " + *key + " on node " + opts_.node_name).error());
  }
  ServeTaskLogs(dir, *query, res);
}

}  // namespace mentat
