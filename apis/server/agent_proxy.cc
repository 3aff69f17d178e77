#include "apis/server/agent_proxy.h"

#include <httplib.h>

#include <utility>

#include "apis/service.h"

namespace mentat {
namespace {

void SendError(HttpResponse& res, const Error& e) {
  res.status = e.HttpStatus();
  res.body = e.ToJson().dump() + "\n";
  res.content_type = "application/json";
}

// Logs and exec reach into running workloads: the operator or admin role.
Status CanUseAgents(const Principal& who, const std::string& action) {
  if (who.role == Role::kOperator || who.role == Role::kAdmin) return {};
  return MakeError(Code::kForbidden, "token \"" + who.name + "\" (role " + RoleName(who.role) +
                                         ") may not " + action +
                                         "; that needs the operator or admin role");
}

Status CheckLabels(const std::vector<std::pair<std::string, std::string>>& fields) {
  for (const auto& [field, value] : fields) {
    if (!IsDnsLabel(value)) {
      return MakeError(Code::kInvalidArgument, "invalid " + field,
                       {{field, 0, 0, "must be a DNS label, got \"" + value + "\""}});
    }
  }
  return {};
}

std::string Namespace(const HttpRequest& req) {
  std::string ns = req.Param("namespace");
  return ns.empty() ? std::string(kDefaultNamespace) : ns;
}


// The request's `names` parameters, as a query to pass on ("&a=1&b=2").
std::string PassQuery(const HttpRequest& req, std::initializer_list<const char*> names) {
  std::string q;
  for (const char* name : names) {
    if (req.HasParam(name)) {
      q += std::string("&") + name + "=" + httplib::detail::encode_query_param(req.Param(name));
    }
  }
  return q;
}

// "::ffff:10.0.0.5" (an IPv4 client of a dual-stack socket) is 10.0.0.5.
std::string PlainAddress(std::string peer) {
  if (peer.rfind("::ffff:", 0) == 0 && peer.find('.') != std::string::npos) peer.erase(0, 7);
  return peer;
}

// status.agentAddress, "http[s]://HOST:PORT" as the agent advertises it.
Result<AgentEndpoint> ParseAgentAddress(const std::string& node, const std::string& url) {
  AgentEndpoint to;
  to.node = node;
  std::string rest = url;
  if (rest.rfind("https://", 0) == 0) {
    to.https = true;
    rest.erase(0, 8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest.erase(0, 7);
  }
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  if (!rest.empty() && rest[0] == '[') {  // [v6]:port
    auto close = rest.find(']');
    if (close == std::string::npos) colon = std::string::npos;
    to.host = rest.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && colon != close + 1) colon = std::string::npos;
  } else {
    to.host = rest.substr(0, colon);
  }
  int port = 0;
  if (colon != std::string::npos) {
    try {
      port = std::stoi(rest.substr(colon + 1));
    } catch (...) {
    }
  } else {
    port = to.https ? 443 : 80;
  }
  if (to.host.empty() || port <= 0 || port > 65535) {
    return Unavailable("node " + node + "'s agent advertises an address the server cannot use: \"" +
                       url + "\"");
  }
  to.port = port;
  return to;
}

}  // namespace

AgentProxy::AgentProxy(Store* store, const AgentKeys* keys, AgentProxyOptions opts)
    : store_(store), keys_(keys), opts_(opts), relay_(opts.relay), sessions_(opts.exec_idle) {}

void AgentProxy::ObserveNode(const std::string& node, const std::string& peer, Json& status) {
  std::string address = PlainAddress(peer);
  status["observedAddress"] = address;
  std::lock_guard<std::mutex> lock(mu_);
  observed_[node] = address;
}

Result<AgentEndpoint> AgentProxy::EndpointOf(const std::string& node) {
  MT_ASSIGN_OR_RETURN(Json n, store_->Get({"Node", "", node}));
  std::string advertised = n.value("status", Json::object()).value("agentAddress", "");
  if (advertised.empty()) return Unavailable("node " + node + "'s agent publishes no address");
  MT_ASSIGN_OR_RETURN(AgentEndpoint to, ParseAgentAddress(node, advertised));
  {
    // Only what this server saw: the store's copy of observedAddress may predate it.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = observed_.find(node);
    if (it == observed_.end() || it->second.empty()) {
      return Unavailable("node " + node +
                         "'s agent has not reported to this server since it "
                         "started (its next heartbeat will)");
    }
    to.ip = it->second;
  }
  if (!to.https) to.host = to.ip;
  to.key = keys_->KeyFor(node);
  return to;
}

Result<AgentEndpoint> AgentProxy::Locate(const std::string& ns, const std::string& name) {
  MT_RETURN_IF_ERROR(CheckLabels({{"namespace", ns}, {"name", name}}));
  MT_ASSIGN_OR_RETURN(Json alloc, store_->Get({"Allocation", ns, name}));
  std::string node = alloc.value("spec", Json::object()).value("nodeName", "");
  if (node.empty()) return Unavailable("allocation " + name + " is not placed on a node yet");
  auto to = EndpointOf(node);
  if (!to && to.error().code() == Code::kNotFound) {
    return Unavailable("allocation " + name + " is on node " + node + ", which is not registered");
  }
  return to;
}

void AgentProxy::Logs(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  if (auto st = CanUseAgents(who, "read logs"); !st) return SendError(res, st.error());
  const std::string ns = Namespace(req), name = req.matches[0];
  auto to = Locate(ns, name);
  if (!to) return SendError(res, to.error());
  std::string path = "/v1/allocations/" + name + "/logs?namespace=" + ns +
                     PassQuery(req, {"stream", "follow", "tail", "since", "offset"});
  relay_.Relay(*to, path, {}, res.Defer());
}

void AgentProxy::ExecCreate(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  if (auto st = CanUseAgents(who, "run commands in allocations"); !st) {
    return SendError(res, st.error());
  }
  const std::string ns = Namespace(req), name = req.matches[0];
  auto to = Locate(ns, name);
  if (!to) return SendError(res, to.error());
  auto rewrite = [this, node = to->node,
                  owner = who.name](const std::string& body) -> Result<std::string> {
    Json created = Json::parse(body, nullptr, false);
    if (!created.is_object() || !created.value("id", Json()).is_string()) {
      return Internal("node " + node + "'s agent started a session but sent no id for it");
    }
    std::string id = sessions_.Add({node, created["id"].get<std::string>(), owner});
    return Json{{"id", id}}.dump() + "\n";
  };
  relay_.Forward(*to, "/v1/allocations/" + name + "/exec?namespace=" + ns, req.body,
                 req.Header("content-type"), std::move(rewrite), res.Defer());
}

void AgentProxy::ExecSession(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  const std::string& id = req.matches[0];
  auto session = sessions_.Find(id, who.name);
  if (!session) return SendError(res, session.error());
  auto to = EndpointOf(session->node);
  if (!to) return SendError(res, to.error());
  const std::string what = req.path.substr(req.path.rfind('/') + 1);
  const std::string path = "/v1/exec/" + session->agent_id + "/" + what;
  if (what != "output") {
    std::string query =
        req.HasParam("eof") ? "?eof=" + httplib::detail::encode_query_param(req.Param("eof")) : "";
    relay_.Forward(*to, path + query, req.body, req.Header("content-type"), nullptr, res.Defer());
    return;
  }
  sessions_.SetReading(id, true);
  RelayHooks hooks;
  // Over once its output has been read to the end; the agent ends a session whose reader left.
  hooks.on_end = [this, id](bool streamed) {
    if (streamed) return sessions_.Remove(id);
    sessions_.SetReading(id, false);
  };
  hooks.last_words = [](const Error& e) { return Json{{"error", e.ToJson()}}.dump() + "\n"; };
  relay_.Relay(*to, path, std::move(hooks), res.Defer());
}

void AgentProxy::AgentKey(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  const std::string& node = req.matches[0];
  if (auto st = CheckLabels({{"name", node}}); !st) return SendError(res, st.error());
  bool own = who.role == Role::kNode && who.node == node;
  if (!own && who.role != Role::kAdmin) {
    return SendError(
        res, Error(Code::kForbidden, "token \"" + who.name + "\" (role " + RoleName(who.role) +
                                         ") may not fetch the agent key of node " + node +
                                         "; that needs node " + node +
                                         "'s own token, or the admin role"));
  }
  res.status = 200;
  res.body = Json{{"node", node}, {"key", keys_->KeyFor(node)}}.dump() + "\n";
}

}  // namespace mentat
