#include "apis/server/api_server.h"

#include <utility>

#include "apis/agent_key.h"
#include "apis/server/api_helpers.h"
#include "apis/server/authorization.h"
#include "apis/service.h"

namespace mentat {

Result<std::vector<Json>> ApiServer::NormalizeAndAdmit(const Document& doc,
                                                       const std::string& default_name) {
  MT_ASSIGN_OR_RETURN(auto objects, NormalizeDocument(doc.value, doc.marks, default_name));
  for (auto& obj : objects) MT_RETURN_IF_ERROR(admission_.Admit(obj, doc.marks));
  return objects;
}

Status ApiServer::CheckArtifacts(const std::vector<Json>& objects, const SourceMap& marks) {
  std::vector<FieldError> missing;
  for (const auto& obj : objects) {
    if (obj.value("kind", "") != "Service") continue;
    std::string rootfs = obj.value("spec", Json::object()).value("rootfs", "");
    if (!IsArtifactDigest(rootfs)) continue;
    // Touched first: garbage collection that has not deleted it by now spares it.
    if (opts_.artifacts) opts_.artifacts->Touch(rootfs);
    if (opts_.artifacts && opts_.artifacts->Stat(rootfs)) continue;
    std::string field = "rootfs";
    for (const char* f : {"rootfs", "config.rootfs", "spec.rootfs"}) {
      if (marks.count(f)) {
        field = f;
        break;
      }
    }
    Mark m = FindMark(marks, field);
    missing.push_back({field, m.line, m.column,
                       "artifact " + rootfs + " is not on this server: `mt apply` uploads it, " +
                           "or PUT /v1/artifacts/" + rootfs + " first"});
  }
  if (missing.empty()) return {};
  return MakeError(Code::kInvalidArgument, "rootfs names an artifact the server does not have",
                   std::move(missing));
}

ApiServer::ApiServer(Store* store, ApiServerOptions opts)
    : store_(store), opts_(std::move(opts)), admission_(store, opts_.default_policy), node_auth_(store) {
  HttpServerOptions ho;
  ho.host = opts_.host;
  ho.port = opts_.port;
  ho.workers = opts_.workers;
  ho.max_body_bytes = kMaxApplyBytes;
  ho.idle_timeout = opts_.idle_timeout;
  ho.limits = opts_.http_limits;
  ho.tls_cert = opts_.tls_cert;
  ho.tls_key = opts_.tls_key;
  ho.observe = [this](const std::string& route, const std::string& method, int status,
                      double seconds) {
    metrics_.ObserveRequest(route.empty() ? "unmatched" : route, method, status, seconds);
  };
  http_ = std::make_unique<HttpServer>(ho);
  const AgentKeys* keys = opts_.agent_keys;
  if (!keys) {
    own_agent_keys_ = AgentKeys::ForSecret(RandomHex(32));
    keys = own_agent_keys_.get();
  }
  AgentProxyOptions po;
  po.relay.ca_file = opts_.agent_ca_file;
  agents_ = std::make_unique<AgentProxy>(store_, keys, po);
}

ApiServer::~ApiServer() { Stop(); }

Result<int> ApiServer::Start() {
  Routes();
  return http_->Start();
}

void ApiServer::Stop() {
  if (stopping_.exchange(true)) return;
  agents_->Stop();
  http_->Stop();
}

size_t ApiServer::WatchStreams() const { return http_->StreamCount(); }

std::vector<Metrics::Sample> ApiServer::HttpSamples() const {
  auto d = [](auto v) { return static_cast<double>(v); };
  return {
      {"mentat_http_connections", "Open connections to the HTTP API.", "gauge", "",
       d(http_->ConnectionCount())},
      {"mentat_http_connections_refused_total",
       "Connections refused over --max-connections or --max-connections-per-client.", "counter",
       "", d(http_->RefusedConnections())},
      {"mentat_http_connections_timed_out_total",
       "Connections closed because a request head or body came too slowly.", "counter", "",
       d(http_->TimedOutConnections())},
      {"mentat_http_accept_failures_total",
       "Times accept() failed (out of file descriptors, say) and accepting paused.", "counter", "",
       d(http_->AcceptFailures())},
      {"mentat_http_auth_failures_total",
       "Requests refused for a missing, malformed, unknown or revoked token.", "counter", "",
       d(auth_failures_.load())},
  };
}

Result<Principal> ApiServer::Authenticate(const HttpRequest& req) const {
  if (!opts_.tokens) return Principal{"anonymous", Role::kAdmin, ""};  // --dev, or --auth none
  std::string h = req.Header("authorization");
  if (h.empty()) {
    return MakeError(Code::kUnauthenticated,
                     "authentication required: send the header \"Authorization: Bearer TOKEN\"");
  }
  if (h.rfind("Bearer ", 0) != 0) {
    return MakeError(Code::kUnauthenticated, "the Authorization header must be \"Bearer TOKEN\"");
  }
  auto who = opts_.tokens->Authenticate(h.substr(7));
  if (!who) return MakeError(Code::kUnauthenticated, "unknown or revoked token");
  return *who;
}

void ApiServer::Unauthenticated(HttpResponse& res, const Error& e, const std::string& peer) {
  SendError(res, e);
  res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"mentat\"");
  ++auth_failures_;
  auth_log_.Warn("authentication failed for a request from " +
                 (peer.empty() ? std::string("an unknown address") : peer) + ": " + e.message());
}

std::optional<HttpResponse> ApiServer::CheckHead(const HttpRequest& head, const std::string& peer,
                                                 const std::set<std::string>& probes) {
  HttpResponse res;
  if (probes.count(head.path)) {
    std::string length = head.Header("content-length");
    bool body = !head.Header("transfer-encoding").empty() || (!length.empty() && length != "0");
    if (!body) return std::nullopt;
    // Probes answer anyone: a body sent with one would be memory held for a stranger.
    SendError(res, Error(Code::kTooLarge, head.path + " takes no request body"));
    return res;
  }
  auto who = Authenticate(head);
  if (who) return std::nullopt;
  Unauthenticated(res, who.error(), peer);
  return res;
}

// Status belongs to the control plane (admin) and, for an agent, to its own Node and the
// Allocations placed on its node.
Status ApiServer::CanWriteStatus(const Principal& who, const ObjectKey& key) {
  if (who.role == Role::kAdmin) return {};
  if (who.role != Role::kNode) {
    return Forbidden(who, "write the status of " + key.kind + " objects", "the admin role");
  }
  return node_auth_.Owns(who, key);
}

HttpHandler ApiServer::Secure(AuthedHandler h) {
  return [this, h = std::move(h)](const HttpRequest& req, HttpResponse& res) {
    auto who = Authenticate(req);
    if (!who) return Unauthenticated(res, who.error(), "");
    if (auto st = CheckNamespaceParam(req); !st) return SendError(res, st.error());
    h(req, res, *who);
  };
}

void ApiServer::Get(const std::string& p, AuthedHandler h) {
  http_->Route("GET", p, Secure(std::move(h)));
}
void ApiServer::Put(const std::string& p, AuthedHandler h) {
  http_->Route("PUT", p, Secure(std::move(h)));
}
void ApiServer::Post(const std::string& p, AuthedHandler h) {
  http_->Route("POST", p, Secure(std::move(h)));
}
void ApiServer::Delete(const std::string& p, AuthedHandler h) {
  http_->Route("DELETE", p, Secure(std::move(h)));
}
void ApiServer::Probe(const std::string& p, HttpHandler h) {
  probes_.insert(p);
  http_->Route("GET", p, std::move(h));
}

void ApiServer::Routes() {
  auto& s = *http_;
  s.SetErrorBody([](int status, const std::string& message) {
    Code code = status == 404 ? Code::kNotFound
              : status == 413 ? Code::kTooLarge
              : status == 503 ? Code::kUnavailable
              : status >= 500 ? Code::kInternal
                              : Code::kInvalidArgument;
    Json j = Error(code, message).ToJson();
    // Statuses no Code stands for keep their own number and reason.
    static const std::map<int, const char*> kOwnReasons = {
        {405, "MethodNotAllowed"}, {429, "TooManyRequests"},
        {431, "RequestHeaderFieldsTooLarge"}, {501, "NotImplemented"}};
    if (auto own = kOwnReasons.find(status); own != kOwnReasons.end()) {
      j["code"] = status;
      j["reason"] = own->second;
    }
    return j.dump() + "\n";
  });
  // Every route but the probes authenticates first, from the request's head (CheckHead), and
  // again here for a request the head check did not see; each handler then checks the role.
  s.CheckHeads([this](const HttpRequest& head, const std::string& peer) {
    return CheckHead(head, peer, probes_);
  });
  // The first route that matches a request serves it: the fixed paths (admin, artifacts,
  // agents) before the /v1/:kind routes, which would take them for a kind.
  AdminRoutes();
  ArtifactRoutes();
  AgentRoutes();
  ObjectRoutes();
  ApplyRoutes();
}

}  // namespace mentat
