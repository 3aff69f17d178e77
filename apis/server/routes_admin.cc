// The API server's admin-ish routes: health and readiness probes, snapshots, tokens, metrics
// and whoami.
#include <utility>

#include "apis/server/api_helpers.h"
#include "apis/server/api_server.h"
#include "apis/server/authorization.h"

namespace mentat {

void ApiServer::AdminRoutes() {
  // Both probes fail, saying why, once this server's member takes no part in its cluster
  // (ApiServerOptions::health): a supervisor sees it, a load balancer sends elsewhere.
  Probe("/healthz", [this](const HttpRequest&, HttpResponse& res) { AnswerProbe(res, "ok"); });
  Get("/v1/snapshot", [this](const HttpRequest&, HttpResponse& res, const Principal& who) {
    if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "take snapshots", "the admin role").error());
    if (!opts_.snapshot) return SendError(res, Error(Code::kUnavailable, "snapshots are not available"));
    auto text = opts_.snapshot();
    if (!text) return SendError(res, text.error());
    res.status = 200;
    res.body = std::move(*text);
    res.content_type = "application/x-ndjson";
  });
  // The control plane: any role may read it, as `mt cluster status` does.
  Get("/v1/cluster", [this](const HttpRequest&, HttpResponse& res, const Principal&) {
    if (!opts_.cluster) return SendError(res, Error(Code::kUnavailable, "cluster status is not available"));
    SendJson(res, 200, opts_.cluster());
  });
  // Membership: admin only (mt cluster add, remove, transfer-leader).
  Post("/v1/cluster/members", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    Json body = Json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.value("name", Json()).is_string() || !body.value("peerURL", Json()).is_string()) {
      return SendError(res, Error(Code::kInvalidArgument, "a member needs a name and a peer address",
                                  {{"name", 0, 0, "required, a DNS label"},
                                   {"peerURL", 0, 0, "required, HOST:PORT of its peer port"}}));
    }
    ChangeCluster(res, who, "add", body["name"], body["peerURL"], 201);
  });
  Delete("/v1/cluster/members/:name", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    ChangeCluster(res, who, "remove", req.matches[0], "", 200);
  });
  Post("/v1/cluster/leader", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    Json body = Json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.value("name", Json()).is_string()) {
      return SendError(res, Error(Code::kInvalidArgument, "name the member to lead",
                                  {{"name", 0, 0, "required: a voting member"}}));
    }
    ChangeCluster(res, who, "transfer-leader", body["name"], "", 200);
  });
  // Tokens: admin only. A new token is in the response once and never again.
  Get("/v1/tokens", [this](const HttpRequest&, HttpResponse& res, const Principal& who) {
    ListTokens(res, who);
  });
  Post("/v1/tokens", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    CreateToken(req, res, who);
  });
  Delete("/v1/tokens/:name", [this](const HttpRequest& req, HttpResponse& res,
                                    const Principal& who) { RevokeToken(req, res, who); });
  Get("/metrics", [this](const HttpRequest&, HttpResponse& res, const Principal&) {
    ServeMetrics(res);
  });
  // Who a token is.
  Get("/v1/whoami", [](const HttpRequest&, HttpResponse& res, const Principal& who) {
    Json j = {{"name", who.name}, {"role", RoleName(who.role)}};
    if (!who.node.empty()) j["node"] = who.node;
    SendJson(res, 200, j);
  });
  Probe("/readyz", [this](const HttpRequest&, HttpResponse& res) { AnswerProbe(res, "ready"); });
}

void ApiServer::AnswerProbe(HttpResponse& res, const std::string& fine) {
  const Status health = opts_.health ? opts_.health() : Status{};
  if (!health) {
    return SendJson(res, 503,
                    {{"status", "unavailable"},
                     {"reason", health.error().message()},
                     {"revision", store_->CurrentRevision()}});
  }
  SendJson(res, 200, {{"status", fine}, {"revision", store_->CurrentRevision()}});
}

namespace {

// With authentication off there are no tokens: says so, and answers true.
bool TokensOff(const TokenStore* tokens, HttpResponse& res) {
  if (tokens) return false;
  SendError(res, Error(Code::kFailedPrecondition,
                       "authentication is off (--dev or --auth none): there are no tokens"));
  return true;
}

}  // namespace

void ApiServer::ListTokens(HttpResponse& res, const Principal& who) {
  if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "list tokens", "the admin role").error());
  if (TokensOff(opts_.tokens, res)) return;
  Json items = Json::array();
  for (const auto& p : opts_.tokens->List()) {
    Json t = {{"name", p.name}, {"role", RoleName(p.role)}};
    if (!p.node.empty()) t["node"] = p.node;
    items.push_back(std::move(t));
  }
  SendJson(res, 200, {{"kind", "TokenList"}, {"items", items}});
}

void ApiServer::ChangeCluster(HttpResponse& res, const Principal& who, const std::string& op,
                              const std::string& name, const std::string& peer, int status) {
  if (who.role != Role::kAdmin) {
    return SendError(res, Forbidden(who, "change the cluster's members", "the admin role").error());
  }
  if (!opts_.change_cluster || !opts_.cluster) {
    return SendError(res, Error(Code::kUnavailable, "the cluster's members cannot be changed here"));
  }
  if (auto st = opts_.change_cluster(op, name, peer); !st) return SendError(res, st.error());
  SendJson(res, status, opts_.cluster());
}

void ApiServer::CreateToken(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "make tokens", "the admin role").error());
  if (TokensOff(opts_.tokens, res)) return;
  Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
      !body.contains("role") || !body["role"].is_string()) {
    return SendError(res, Error(Code::kInvalidArgument, "a token needs a name and a role",
                                {{"name", 0, 0, "required, a DNS label"},
                                 {"role", 0, 0, "required: read-only, operator, admin or node"}}));
  }
  auto role = ParseRole(body["role"]);
  if (!role) {
    return SendError(res, Error(Code::kInvalidArgument, "invalid token",
                                {{"role", 0, 0, role.error().message()}}));
  }
  std::string node = body.value("node", Json("")).is_string() ? body.value("node", "") : "";
  auto token = opts_.tokens->Create(body["name"], *role, node);
  if (!token) return SendError(res, token.error());
  Json out = {{"name", body["name"]}, {"role", RoleName(*role)}, {"token", *token}};
  if (*role == Role::kNode) out["node"] = node;
  SendJson(res, 201, out);
}

void ApiServer::RevokeToken(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "revoke tokens", "the admin role").error());
  if (TokensOff(opts_.tokens, res)) return;
  if (auto st = opts_.tokens->Remove(req.matches[0]); !st) return SendError(res, st.error());
  SendJson(res, 200, {{"name", req.matches[0]}, {"revoked", true}});
}

void ApiServer::ServeMetrics(HttpResponse& res) {
  std::vector<Metrics::Sample> samples = {
      {"mentat_store_revision", "The store's current revision.", "gauge", "",
       static_cast<double>(store_->CurrentRevision())},
      {"mentat_watch_streams", "Open watch streams on the HTTP API.", "gauge", "",
       static_cast<double>(http_->StreamCount())},
  };
  for (auto& sample : HttpSamples()) samples.push_back(std::move(sample));
  if (opts_.metrics) {
    for (auto& s : opts_.metrics()) samples.push_back(std::move(s));
  }
  res.content_type = "text/plain; version=0.0.4";
  res.body = metrics_.Render(samples);
}

}  // namespace mentat
