#include "apis/server/api_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "apis/agent_key.h"
#include "apis/json_text.h"
#include "apis/security_profile.h"
#include "apis/server/authorization.h"
#include "apis/service.h"
#include "apis/yaml.h"

namespace mentat {
namespace {

void SendError(HttpResponse& res, const Error& e) {
  res.status = e.HttpStatus();
  res.body = e.ToJson().dump() + "\n";
  res.content_type = "application/json";
}

void SendJson(HttpResponse& res, int status, const Json& j) {
  res.status = status;
  res.body = j.dump() + "\n";
  res.content_type = "application/json";
}

Result<KindInfo> KindOf(const std::string& plural) {
  auto k = KindByPlural(plural);
  if (!k) {
    std::vector<std::string> plurals;
    for (const auto& info : Kinds()) plurals.emplace_back(info.plural);
    std::string hint = ClosestMatch(plural, plurals);
    return MakeError(Code::kNotFound, "no resource type \"" + plural + "\"" +
                                          (hint.empty() ? "" : "; did you mean \"" + hint + "\"?"));
  }
  return *k;
}

// ?namespace=, when given, is a DNS label on every route (it names a place in the store and in
// the nodes' task directories: "../x", "a/b" or a newline must never reach either).
Status CheckNamespaceParam(const HttpRequest& req) {
  if (!req.HasParam("namespace")) return {};
  const std::string ns = req.Param("namespace");
  if (ns.empty() || IsDnsLabel(ns)) return {};
  std::string shown;
  for (char c : ns.substr(0, 64)) shown += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return MakeError(Code::kInvalidArgument, "invalid namespace",
                   {{"namespace", 0, 0,
                     "must be a DNS label (1-63 lowercase letters, digits or '-', starting and "
                     "ending with a letter or digit), got \"" + shown +
                         (ns.size() > 64 ? "..." : "") + "\""}});
}

std::string NamespaceParam(const HttpRequest& req, const KindInfo& kind) {
  if (!kind.namespaced) return "";
  std::string ns = req.Param("namespace");
  return ns.empty() ? std::string(kDefaultNamespace) : ns;
}

Result<std::optional<LabelSelector>> SelectorParam(const std::string& text) {
  if (text.empty()) return std::optional<LabelSelector>();
  MT_ASSIGN_OR_RETURN(auto sel, LabelSelector::Parse(text));
  return std::optional<LabelSelector>(std::move(sel));
}

bool DryRun(const HttpRequest& req) {
  std::string v = req.Param("dryRun");
  return v == "true" || v == "All" || v == "server";
}

Result<int64_t> ParseRevision(const std::string& s, const std::string& field) {
  if (s.empty()) return 0;
  try {
    size_t pos = 0;
    int64_t v = std::stoll(s, &pos);
    if (pos == s.size() && v >= 0) return v;
  } catch (...) {
  }
  return MakeError(Code::kInvalidArgument, "invalid " + field,
                   {{field, 0, 0, "must be a non-negative integer, got \"" + s + "\""}});
}

// Builds the DOM (nlohmann's own SAX DOM builder) while enforcing the YAML decoder's guards:
// no duplicate keys (nlohmann would keep the last silently) and no nesting deeper than
// kMaxManifestDepth.
class GuardedJsonSax {
 public:
  explicit GuardedJsonSax(Json& out) : dom_(out, /*allow_exceptions=*/false) {}
  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const std::string& s) { return dom_.number_float(v, s); }
  bool string(std::string& v) { return dom_.string(v); }
  bool binary(Json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) {
    if (++depth_ > kMaxManifestDepth) return false;
    if (keys_.size() < depth_) keys_.resize(depth_);
    keys_[depth_ - 1].clear();
    return dom_.start_object(n);
  }
  bool key(std::string& k) {
    auto& seen = keys_[depth_ - 1];
    if (std::find(seen.begin(), seen.end(), k) != seen.end()) return false;
    seen.push_back(k);
    return dom_.key(k);
  }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    if (++depth_ > kMaxManifestDepth) return false;
    if (keys_.size() < depth_) keys_.resize(depth_);
    return dom_.start_array(n);
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  size_t depth_ = 0;
  std::vector<std::vector<std::string>> keys_;  // per open object: the keys seen so far
};

// Parses a JSON body fast (the plain-JSON parser, else nlohmann), but only if it passes the same
// guards as the YAML decoder. Anything else is left to the YAML decoder, which reports it with a
// line.
std::optional<Json> FastJson(const std::string& body) {
  if (body.empty() || body.front() != '{' || body.size() > kMaxManifestBytes) return std::nullopt;
  if (auto plain = ParsePlainJson(body, kMaxManifestDepth)) return plain;
  Json parsed;
  GuardedJsonSax sax(parsed);
  if (!Json::sax_parse(body, &sax) || !parsed.is_object()) return std::nullopt;
  return parsed;
}

// The name a nameless manifest gets from its file: "dir/api-service.yaml" -> "api-service".
std::string NameFromSource(const std::string& source) {
  std::string base = source.substr(source.find_last_of('/') + 1);
  auto dot = base.find('.');
  if (dot != std::string::npos) base = base.substr(0, dot);
  return IsDnsLabel(base) ? base : "";
}

// May `who` create, update or delete this object (its spec)?
Status CanWrite(const Principal& who, const std::string& kind, const std::string& name,
                bool deleting) {
  if (who.role == Role::kAdmin) return {};
  std::string action = (deleting ? "delete " : "write ") + kind + " objects";
  if (who.role == Role::kOperator) {
    if (kind == "Service") return {};
    return Forbidden(who, action, "the admin role");
  }
  if (who.role == Role::kNode && kind == "Node" && name == who.node && !deleting) return {};
  // An agent reports Events; the PUT handler checks they are about its own node's objects.
  if (who.role == Role::kNode && kind == "Event" && !deleting) return {};
  if (who.role == Role::kNode && kind == "Node") {
    return Forbidden(who, (deleting ? "delete node " : "write node ") + name,
                     deleting ? "the admin role" : "node " + name + "'s own token, or the admin role");
  }
  return Forbidden(who, action, kind == "Service" ? "the operator or admin role" : "the admin role");
}

// Uploading an artifact is deploying code: the operator or admin role. Any token may read one
// (agents fetch them with their node token).
Status CanUploadArtifacts(const Principal& who) {
  if (who.role == Role::kAdmin || who.role == Role::kOperator) return {};
  return Forbidden(who, "upload artifacts", "the operator or admin role");
}

std::string Mebibytes(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

Error InvalidDigest(const std::string& digest) {
  return Error(Code::kInvalidArgument, "invalid artifact digest",
               {{"digest", 0, 0,
                 "\"" + digest.substr(0, 80) + "\" is not sha256: and 64 lower-case hex digits"}});
}

Json ArtifactJson(const ArtifactInfo& a) {
  return {{"digest", a.digest}, {"size", a.size}, {"createdAt", a.created_at}};
}

// One watch response: store events in, NDJSON lines out. Used on the loop thread only; it
// holds no thread while it waits.
struct WatchStream : std::enable_shared_from_this<WatchStream> {
  // How far a client may lag, in bytes the kernel has not taken yet, before this stream stops
  // reading its watcher. The watcher's own bounded buffer then fills, and it is closed (Gone).
  static constexpr size_t kMaxPending = 1 << 20;

  WatcherPtr watcher;
  std::optional<LabelSelector> selector;
  std::string ns;
  std::string kind;
  int64_t last_rv = 0;
  std::chrono::steady_clock::time_point last_sent = std::chrono::steady_clock::now();
  std::weak_ptr<HttpStream> http;
  std::shared_ptr<std::atomic<bool>> scheduled = std::make_shared<std::atomic<bool>>(false);

  void Drain() {
    auto h = http.lock();
    if (!h || !h->open()) return;
    std::string batch;
    while (h->Pending() + batch.size() < kMaxPending) {
      auto ev = watcher->TryNext();
      if (!ev) {
        // Closed: it fell behind, or the server is shutting down. Say why, then end.
        Json e = {{"type", "ERROR"}, {"object", ev.error().ToJson()}};
        batch += e.dump() + "\n";
        h->Write(batch);
        h->End();
        return;
      }
      if (!ev->has_value()) break;
      const WatchEvent& we = ***ev;
      last_rv = we.revision;
      if (!ns.empty() && NamespaceOf(we.object) != ns) continue;
      if (selector && !selector->Matches(we.object)) continue;
      batch += *we.json;
      batch += '\n';
    }
    if (!batch.empty()) {
      h->Write(batch);
      last_sent = std::chrono::steady_clock::now();
    }
    if (h->Pending() >= kMaxPending) {
      std::weak_ptr<WatchStream> weak = shared_from_this();
      h->WhenDrained([weak] {
        if (auto s = weak.lock()) s->Drain();
      });
    }
  }

  // A bookmark never claims more than this stream has delivered.
  void Bookmark(std::chrono::seconds interval) {
    auto h = http.lock();
    if (!h || !h->open() || h->Pending() >= kMaxPending) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_sent < interval * 9 / 10) return;
    Json b = {{"type", "BOOKMARK"},
              {"object",
               {{"kind", kind}, {"metadata", {{"resourceVersion", std::to_string(last_rv)}}}}}};
    last_sent = now;
    h->Write(b.dump() + "\n");
  }
};

}  // namespace

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
  auto probes = std::make_shared<std::set<std::string>>();
  s.CheckHeads([this, probes](const HttpRequest& head, const std::string& peer) {
    return CheckHead(head, peer, *probes);
  });
  auto secure = [this](AuthedHandler h) -> HttpHandler {
    return [this, h = std::move(h)](const HttpRequest& req, HttpResponse& res) {
      auto who = Authenticate(req);
      if (!who) return Unauthenticated(res, who.error(), "");
      if (auto st = CheckNamespaceParam(req); !st) return SendError(res, st.error());
      h(req, res, *who);
    };
  };
  auto Get = [&](const std::string& p, AuthedHandler h) { s.Route("GET", p, secure(std::move(h))); };
  auto Put = [&](const std::string& p, AuthedHandler h) { s.Route("PUT", p, secure(std::move(h))); };
  auto Post = [&](const std::string& p, AuthedHandler h) { s.Route("POST", p, secure(std::move(h))); };
  auto Delete = [&](const std::string& p, AuthedHandler h) {
    s.Route("DELETE", p, secure(std::move(h)));
  };
  auto Probe = [&](const std::string& p, HttpHandler h) {
    probes->insert(p);
    s.Route("GET", p, std::move(h));
  };

  Probe("/healthz", [this](const HttpRequest&, HttpResponse& res) {
    SendJson(res, 200, {{"status", "ok"}, {"revision", store_->CurrentRevision()}});
  });
  Get("/v1/snapshot", [this](const HttpRequest&, HttpResponse& res, const Principal& who) {
    if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "take snapshots", "the admin role").error());
    if (!opts_.snapshot) return SendError(res, Error(Code::kUnavailable, "snapshots are not available"));
    auto text = opts_.snapshot();
    if (!text) return SendError(res, text.error());
    res.status = 200;
    res.body = std::move(*text);
    res.content_type = "application/x-ndjson";
  });
  // Tokens: admin only. A new token is in the response once and never again.
  auto tokens_off = [this](HttpResponse& res) {
    if (opts_.tokens) return false;
    SendError(res, Error(Code::kFailedPrecondition,
                         "authentication is off (--dev or --auth none): there are no tokens"));
    return true;
  };
  Get("/v1/tokens", [this, tokens_off](const HttpRequest&, HttpResponse& res, const Principal& who) {
    if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "list tokens", "the admin role").error());
    if (tokens_off(res)) return;
    Json items = Json::array();
    for (const auto& p : opts_.tokens->List()) {
      Json t = {{"name", p.name}, {"role", RoleName(p.role)}};
      if (!p.node.empty()) t["node"] = p.node;
      items.push_back(std::move(t));
    }
    SendJson(res, 200, {{"kind", "TokenList"}, {"items", items}});
  });
  Post("/v1/tokens", [this, tokens_off](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "make tokens", "the admin role").error());
    if (tokens_off(res)) return;
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
  });
  Delete("/v1/tokens/:name", [this, tokens_off](const HttpRequest& req, HttpResponse& res,
                                                const Principal& who) {
    if (who.role != Role::kAdmin) return SendError(res, Forbidden(who, "revoke tokens", "the admin role").error());
    if (tokens_off(res)) return;
    if (auto st = opts_.tokens->Remove(req.matches[0]); !st) return SendError(res, st.error());
    SendJson(res, 200, {{"name", req.matches[0]}, {"revoked", true}});
  });
  Get("/metrics", [this](const HttpRequest&, HttpResponse& res, const Principal&) {
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
  });
  // Who a token is.
  Get("/v1/whoami", [](const HttpRequest&, HttpResponse& res, const Principal& who) {
    Json j = {{"name", who.name}, {"role", RoleName(who.role)}};
    if (!who.node.empty()) j["node"] = who.node;
    SendJson(res, 200, j);
  });
  Probe("/readyz", [this](const HttpRequest&, HttpResponse& res) {
    SendJson(res, 200, {{"status", "ready"}, {"revision", store_->CurrentRevision()}});
  });

  // Artifacts: app rootfs archives, content-addressed. Before the /v1/:kind routes, which
  // would take these paths for a kind.
  auto artifacts_off = [this](HttpResponse& res) {
    if (opts_.artifacts) {
      res.headers.emplace_back("X-Mentat-Artifact-Max-Bytes",
                               std::to_string(opts_.artifacts->max_bytes()));
      return false;
    }
    SendError(res, Error(Code::kUnavailable, "this server stores no artifacts"));
    return true;
  };
  if (opts_.artifacts) {
    // The body streams to a temp file as it arrives. The head is checked here already, so a
    // refused upload writes nothing; the handler checks again and answers.
    s.StreamBody("PUT", "/v1/artifacts/:digest", opts_.artifacts->max_bytes(),
                 [this](const HttpRequest& head) -> Result<BodySinkPtr> {
                   MT_ASSIGN_OR_RETURN(auto who, Authenticate(head));
                   MT_RETURN_IF_ERROR(CanUploadArtifacts(who));
                   const std::string& digest = head.matches[0];
                   // Stored already, or not a digest: the body is read and dropped.
                   if (!IsArtifactDigest(digest) || opts_.artifacts->Stat(digest)) {
                     return BodySinkPtr();
                   }
                   MT_ASSIGN_OR_RETURN(auto upload, opts_.artifacts->Begin());
                   return BodySinkPtr(std::move(upload));
                 });
  }
  Get("/v1/artifacts", [this, artifacts_off](const HttpRequest&, HttpResponse& res,
                                             const Principal& who) {
    if (artifacts_off(res)) return;
    if (who.role == Role::kNode) {
      return SendError(res, Forbidden(who, "list artifacts", "a role other than node").error());
    }
    auto list = opts_.artifacts->List();
    if (!list) return SendError(res, list.error());
    auto refs = ArtifactReferences(*store_);
    if (!refs) return SendError(res, refs.error());
    Json items = Json::array();
    for (const auto& a : *list) {
      Json item = ArtifactJson(a);
      auto it = refs->find(a.digest);
      item["referencedBy"] = it == refs->end() ? Json::array() : Json(it->second);
      items.push_back(std::move(item));
    }
    SendJson(res, 200, {{"kind", "ArtifactList"},
                        {"maxBytes", opts_.artifacts->max_bytes()},
                        {"items", items}});
  });
  // GET downloads (a piece at a time as the client takes it), HEAD answers whether it is
  // stored and its size.
  Get("/v1/artifacts/:digest", [this, artifacts_off](const HttpRequest& req, HttpResponse& res,
                                                     const Principal& who) {
    if (artifacts_off(res)) return;
    const std::string& digest = req.matches[0];
    if (!IsArtifactDigest(digest)) return SendError(res, InvalidDigest(digest));
    if (auto st = node_auth_.CanReadArtifact(who, digest); !st) return SendError(res, st.error());
    opts_.artifacts->Touch(digest);  // before the look: see ArtifactStore::CollectGarbage
    auto info = opts_.artifacts->Stat(digest);
    if (!info) {
      return SendError(res,
                       Error(Code::kNotFound, "artifact " + digest + " is not on this server"));
    }
    // Opened now: a garbage collection after the look finds it open and cannot take it away.
    int fd = -1;
    if (req.method != "HEAD") {
      fd = ::open(opts_.artifacts->PathOf(digest).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return SendError(res, ErrnoError("artifact " + digest, errno).error());
    }
    res.status = 200;
    res.content_type = "application/octet-stream";
    res.headers.emplace_back("Content-Length", std::to_string(info->size));
    res.headers.emplace_back("X-Mentat-Digest", digest);
    if (req.method == "HEAD") return;
    // Closed by the stream, or here if the client left before the stream began.
    auto file = std::shared_ptr<int>(new int(fd), [](int* f) {
      if (*f >= 0) ::close(*f);
      delete f;
    });
    uint64_t size = info->size;
    res.stream = [file, size](const std::shared_ptr<HttpStream>& stream) {
      stream->SendFile(std::exchange(*file, -1), 0, size);
    };
  });
  Put("/v1/artifacts/:digest", [this, artifacts_off](const HttpRequest& req, HttpResponse& res,
                                                     const Principal& who) {
    if (artifacts_off(res)) return;
    if (auto st = CanUploadArtifacts(who); !st) return SendError(res, st.error());
    if (req.body_error) {
      if (req.body_error->code() != Code::kTooLarge) return SendError(res, *req.body_error);
      uint64_t max = opts_.artifacts->max_bytes();
      return SendError(res, Error(Code::kTooLarge,
                                  "artifact of " + std::to_string(req.body_bytes) +
                                      " bytes is over this server's limit of " + Mebibytes(max) +
                                      " (mentat-server --max-artifact-mb)",
                                  {{"body", 0, 0, "at most " + std::to_string(max) + " bytes"}}));
    }
    const std::string& digest = req.matches[0];
    if (!IsArtifactDigest(digest)) return SendError(res, InvalidDigest(digest));
    auto upload = std::dynamic_pointer_cast<ArtifactUpload>(req.sink);
    if (!upload) {
      if (auto info = opts_.artifacts->Stat(digest)) {
        // Deduplicated: the same bytes are stored already (the body was not kept).
        opts_.artifacts->Touch(digest);
        Json out = ArtifactJson(*info);
        out["created"] = false;
        return SendJson(res, 200, out);
      }
      // A request pipelined behind another one passed the gate unseen: its body came in
      // memory, under the ordinary limit.
      auto begun = opts_.artifacts->Begin();
      if (!begun) return SendError(res, begun.error());
      if (auto st = (*begun)->Write(req.body.data(), req.body.size()); !st) {
        return SendError(res, st.error());
      }
      upload = std::move(*begun);
    }
    auto done = opts_.artifacts->Commit(*upload, digest);
    if (!done) return SendError(res, done.error());
    if (done->created) {
      spdlog::info("artifact {} stored ({} bytes, by {})", digest, done->info.size, who.name);
    }
    Json out = ArtifactJson(done->info);
    out["created"] = done->created;
    SendJson(res, done->created ? 201 : 200, out);
  });

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

  // List, or watch with ?watch=true.
  Get("/v1/:kind", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    auto kind = KindOf(req.matches[0]);
    if (!kind) return SendError(res, kind.error());
    auto narrowed = node_auth_.ListSelector(who, std::string(kind->kind), req.Param("labelSelector"));
    if (!narrowed) return SendError(res, narrowed.error());
    auto sel = SelectorParam(*narrowed);
    if (!sel) return SendError(res, sel.error());
    std::string ns = req.HasParam("namespace") ? req.Param("namespace") : "";
    if (!kind->namespaced) ns.clear();
    std::string w = req.Param("watch");
    if (w != "true" && w != "1") {
      ListOptions lo;
      lo.ns = ns;
      lo.selector = *sel;
      auto limit = ParseRevision(req.Param("limit"), "limit");
      if (!limit) return SendError(res, limit.error());
      lo.limit = static_cast<size_t>(*limit);
      lo.continue_token = req.Param("continue");
      lo.raw = true;  // the stored JSON goes out as stored: no parse, no re-serialize
      auto list = store_->List(std::string(kind->kind), lo);
      if (!list) return SendError(res, list.error());
      std::string body = "{\"apiVersion\":\"" + std::string(kApiVersion) + "\",\"kind\":\"" +
                         std::string(kind->kind) + "List\",\"resourceVersion\":\"" +
                         std::to_string(list->revision) + "\",";
      if (!list->continue_token.empty()) body += "\"continue\":\"" + list->continue_token + "\",";
      size_t total = body.size() + 16;
      for (const auto& r : list->raw_items) total += r.size() + 1;
      body.reserve(total);
      body += "\"items\":[";
      for (size_t i = 0; i < list->raw_items.size(); ++i) {
        if (i) body += ',';
        body += list->raw_items[i];
      }
      body += "]}\n";
      res.status = 200;
      res.body = std::move(body);
      return;
    }
    auto rv = ParseRevision(req.Param("resourceVersion"), "resourceVersion");
    if (!rv) return SendError(res, rv.error());
    int64_t from = *rv ? *rv : store_->CurrentRevision();
    auto watcher = store_->Watch(std::string(kind->kind), from);
    if (!watcher) return SendError(res, watcher.error());
    auto stream = std::make_shared<WatchStream>();
    stream->watcher = std::move(*watcher);
    stream->selector = *sel;
    stream->ns = ns;
    stream->kind = std::string(kind->kind);
    stream->last_rv = from;
    auto interval = opts_.bookmark_interval;
    res.content_type = "application/x-ndjson";
    res.stream = [stream, interval, server = http_.get()](const std::shared_ptr<HttpStream>& http) {
      stream->http = http;
      // The stream owns the watch: it closes with the client, the server, or an error.
      http->OnClose([stream] { stream->watcher->Close(); });
      http->Every(std::chrono::duration_cast<std::chrono::milliseconds>(interval),
                  [stream, interval] { stream->Bookmark(interval); });
      // Store events wake the loop; the notify runs under store locks, so it only posts.
      std::weak_ptr<WatchStream> weak = stream;
      auto scheduled = stream->scheduled;
      stream->watcher->SetNotify([server, weak, scheduled] {
        if (scheduled->exchange(true)) return;
        server->Post([weak, scheduled] {
          scheduled->store(false);
          if (auto s = weak.lock()) s->Drain();
        });
      });
      stream->Drain();
    };
  });

  Get("/v1/:kind/:name", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    auto kind = KindOf(req.matches[0]);
    if (!kind) return SendError(res, kind.error());
    auto obj = store_->Get({std::string(kind->kind), NamespaceParam(req, *kind), req.matches[1]});
    if (!obj) return SendError(res, obj.error());
    if (auto st = node_auth_.CanRead(who, *obj); !st) return SendError(res, st.error());
    SendJson(res, 200, *obj);
  });

  Put("/v1/:kind/:name", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    auto kind = KindOf(req.matches[0]);
    if (!kind) return SendError(res, kind.error());
    std::string name = req.matches[1];
    if (auto st = CanWrite(who, std::string(kind->kind), name, false); !st) {
      return SendError(res, st.error());
    }
    // JSON from programs takes the fast path (nlohmann). YAML, and JSON that fails
    // validation, goes through the YAML decoder, which knows the line of every field.
    // What the handler needs to know of the input once it is normalized.
    struct Input {
      bool has_metadata = false;
      bool explicit_ns = false;
    };
    auto normalize = [&](Document d) {
      Input in;
      if (d.value.is_object()) {
        if (!d.value.contains("kind") && kind->kind != "Service" && !IsProfilesDocument(d.value)) {
          d.value["kind"] = std::string(kind->kind);
        }
        in.has_metadata = d.value.contains("metadata");
        in.explicit_ns = d.value.contains("namespace") ||
                         (in.has_metadata && d.value["metadata"].is_object() &&
                          d.value["metadata"].contains("namespace"));
        // Placed before admission: a namespace's policy is chosen by it.
        if (kind->namespaced && req.HasParam("namespace")) DefaultNamespace(d.value, req.Param("namespace"));
      }
      return std::make_pair(in, NormalizeAndAdmit(d, name));
    };
    std::optional<std::pair<Input, Result<std::vector<Json>>>> done;
    if (auto fast = FastJson(req.body)) {
      auto attempt = normalize(Document{"", std::move(*fast), {}, 1});
      if (attempt.second) done = std::move(attempt);
    }
    if (!done) {
      auto doc = DecodeYaml(req.body);
      if (!doc) return SendError(res, doc.error());
      done = normalize(std::move(*doc));
    }
    Input input = done->first;
    auto& objects = done->second;
    if (!objects) return SendError(res, objects.error());
    if (objects->size() != 1) {
      return SendError(res, Error(Code::kInvalidArgument,
                                  "this document declares " + std::to_string(objects->size()) +
                                      " objects; use POST /v1/apply (mt apply) for it"));
    }
    auto obj = std::optional<Json>(std::move((*objects)[0]));
    if ((*obj)["kind"] != std::string(kind->kind)) {
      return SendError(res, Error(Code::kInvalidArgument,
                                  "body is a " + (*obj)["kind"].get<std::string>() +
                                      ", but the path is /v1/" + std::string(kind->plural)));
    }
    if (NameOf(*obj) != name) {
      // An error path: decode again for the line (the fast JSON path keeps none).
      auto with_marks = DecodeYaml(req.body);
      Mark m = with_marks ? FindMark(with_marks->marks,
                                     input.has_metadata ? "metadata.name" : "name")
                          : Mark{};
      return SendError(res, Error(Code::kInvalidArgument, "name mismatch",
                                  {{"metadata.name", m.line, m.column,
                                    "is \"" + NameOf(*obj) + "\" but the URL names \"" + name +
                                        "\""}}));
    }
    if (kind->namespaced && req.HasParam("namespace") &&
        req.Param("namespace") != NamespaceOf(*obj)) {
      if (input.explicit_ns) {
        return SendError(res, Error(Code::kInvalidArgument,
                                    "namespace in the body (" + NamespaceOf(*obj) +
                                        ") differs from ?namespace=" +
                                        req.Param("namespace")));
      }
      (*obj)["metadata"]["namespace"] = req.Param("namespace");
    }
    if (auto st = node_auth_.CanWriteObject(who, *obj); !st) return SendError(res, st.error());
    if (!DryRun(req)) {
      if (auto st = CheckArtifacts({*obj}, {}); !st) {
        // An error path: decode again for the line (the fast JSON path keeps none).
        auto with_marks = DecodeYaml(req.body);
        if (with_marks) st = CheckArtifacts({*obj}, with_marks->marks);
        if (!st) return SendError(res, st.error());
      }
    }
    WriteOptions wo;
    wo.dry_run = DryRun(req);
    wo.expected_revision = ResourceVersionOf(*obj);
    if (wo.expected_revision < 0) {
      return SendError(res, Error(Code::kInvalidArgument, "invalid metadata.resourceVersion"));
    }
    // A one-object transaction: it says whether it created the object (201) without a
    // second read, and honours metadata.resourceVersion as the precondition. The answer
    // waits for the fsync; this worker does not.
    std::vector<Json> puts;
    puts.push_back(std::move(*obj));
    store_->TxnAsync(puts, wo.dry_run, {},
                     [respond = res.Defer()](Result<std::vector<TxnResult>> written) {
                       HttpResponse out;
                       if (!written) {
                         SendError(out, written.error());
                         return respond(std::move(out));
                       }
                       auto& result = (*written)[0];
                       int status = result.action == TxnResult::kCreated ? 201 : 200;
                       if (result.json.empty()) {
                         SendJson(out, status, result.object);
                         return respond(std::move(out));
                       }
                       out.status = status;  // the stored text, not serialized a second time
                       out.body = std::move(result.json);
                       out.body += '\n';
                       respond(std::move(out));
                     });
  });

  // Apply a set of manifests as one transaction: every document of every file is decoded,
  // normalized and admitted first; if any fails, nothing is written.
  Post("/v1/apply", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    std::vector<std::pair<std::string, std::string>> sources;  // (source, text)
    Json body = Json::parse(req.body, nullptr, false);
    if (body.is_object() && body.contains("documents")) {
      if (!body["documents"].is_array()) {
        return SendError(res, Error(Code::kInvalidArgument, "documents must be a list"));
      }
      for (const auto& d : body["documents"]) {
        if (!d.is_object() || !d.contains("text") || !d["text"].is_string()) {
          return SendError(res, Error(Code::kInvalidArgument,
                                      "each document needs text (and optionally source)"));
        }
        sources.emplace_back(d.value("source", Json("")).is_string() ? d.value("source", "") : "",
                             d["text"].get<std::string>());
      }
    } else {
      sources.emplace_back("", req.body);
    }
    std::vector<FieldError> errors;
    Code code = Code::kOk;
    int bad_documents = 0;
    std::vector<Json> objects;
    std::map<std::string, std::string> first_seen;  // store key -> where
    for (const auto& [source, text] : sources) {
      auto add_errors = [&](const Error& e, int line_hint) {
        ++bad_documents;
        if (code == Code::kOk || e.code() == Code::kInvalidArgument || e.code() == Code::kTooLarge) {
          code = e.code();
        }
        if (e.details().empty()) {
          FieldError fe("", line_hint, 0, e.message());
          fe.source = source;
          errors.push_back(fe);
        }
        for (auto d : e.details()) {
          d.source = source;
          errors.push_back(std::move(d));
        }
      };
      auto docs = DecodeYamlStream(text);
      if (!docs) {
        add_errors(docs.error(), 0);
        continue;
      }
      std::string default_name = docs->size() == 1 ? NameFromSource(source) : "";
      std::string default_ns = req.Param("namespace");
      for (auto doc : *docs) {
        // `mt -n NS apply` places objects that name no namespace of their own.
        DefaultNamespace(doc.value, default_ns);
        auto objs = NormalizeAndAdmit(doc, default_name);
        if (!objs) {
          add_errors(objs.error(), doc.first_line);
          continue;
        }
        // A dry run uploads nothing (`mt apply --dry-run` packs only), so it needs no artifact.
        if (!DryRun(req)) {
          if (auto st = CheckArtifacts(*objs, doc.marks); !st) {
            add_errors(st.error(), doc.first_line);
            continue;
          }
        }
        for (auto& o : *objs) {
          for (const char* owned : {"resourceVersion", "uid", "generation", "creationTimestamp",
                                    "deletionTimestamp"}) {
            o["metadata"].erase(owned);
          }
          std::string where = (source.empty() ? "document" : source) + ":" +
                              std::to_string(doc.first_line);
          std::string key = KeyOf(o).ToString();
          auto [it, inserted] = first_seen.emplace(key, where);
          if (!inserted) {
            FieldError fe("metadata.name", doc.first_line, 0,
                          key + " is declared twice: first at " + it->second);
            fe.source = source;
            errors.push_back(fe);
            ++bad_documents;
            code = Code::kInvalidArgument;
            continue;
          }
          objects.push_back(std::move(o));
        }
      }
    }
    if (!errors.empty()) {
      return SendError(res, Error(code, std::to_string(bad_documents) + " document" +
                                            (bad_documents == 1 ? " is" : "s are") +
                                            (code == Code::kForbidden ? " not allowed" : " invalid") +
                                            "; nothing was applied",
                                  std::move(errors)));
    }
    for (const auto& o : objects) {
      if (auto st = CanWrite(who, o.value("kind", ""), NameOf(o), false); !st) {
        return SendError(res, st.error());
      }
      if (auto st = node_auth_.CanWriteObject(who, o); !st) return SendError(res, st.error());
    }
    // An apply set: every object is labelled with it, and --prune deletes the objects an
    // earlier apply of the same set labelled that this one no longer declares. Never others.
    std::string applyset = req.Param("applyset");
    bool prune = req.Param("prune") == "true";
    if (prune && applyset.empty()) {
      return SendError(res, Error(Code::kInvalidArgument, "prune needs an apply set",
                                  {{"prune", 0, 0,
                                    "give applyset=NAME: only objects an earlier apply of that "
                                    "same set recorded are ever pruned"}}));
    }
    if (!applyset.empty() && !IsDnsLabel(applyset)) {
      return SendError(res, Error(Code::kInvalidArgument, "invalid apply set name",
                                  {{"applyset", 0, 0, "must be a DNS label, got \"" + applyset + "\""}}));
    }
    std::vector<ObjectKey> pruned;
    if (!applyset.empty()) {
      for (auto& o : objects) {
        auto current = store_->Get(KeyOf(o));
        if (current) {
          std::string owner = LabelOf(*current, kLabelApplySet);
          if (!owner.empty() && owner != applyset) {
            return SendError(res, Error(Code::kConflict,
                                        KeyOf(o).ToString() + " belongs to apply set \"" + owner +
                                            "\", not \"" + applyset + "\"; nothing was applied"));
          }
        }
        o["metadata"]["labels"][std::string(kLabelApplySet)] = applyset;
      }
      if (prune) {
        auto sel = LabelSelector::Parse(std::string(kLabelApplySet) + "=" + applyset);
        if (!sel) return SendError(res, sel.error());
        for (const auto& info : Kinds()) {
          ListOptions lo;
          lo.selector = *sel;
          auto members = store_->List(std::string(info.kind), lo);
          if (!members) return SendError(res, members.error());
          for (const auto& m : members->items) {
            ObjectKey key = KeyOf(m);
            if (first_seen.count(key.ToString())) continue;
            if (auto st = CanWrite(who, key.kind, key.name, true); !st) {
              return SendError(res, st.error());
            }
            pruned.push_back(key);
          }
        }
      }
    }
    bool dry_run = DryRun(req);
    auto results = store_->Txn(objects, dry_run, pruned);
    if (!results) return SendError(res, results.error());
    Json items = Json::array();
    static const char* actions[] = {"created", "configured", "unchanged", "pruned"};
    // The answer's resourceVersion is this apply's own: the latest of its objects' revisions,
    // not the store's revision when the answer is made (a controller may have written since,
    // and a watch from there would miss that write).
    int64_t last = 0;
    for (const auto& r : *results) {
      const std::string rv = r.object["metadata"].value("resourceVersion", "");
      if (auto n = ParseRevision(rv, "resourceVersion"); n) last = std::max(last, *n);
      items.push_back({{"kind", r.object.value("kind", "")},
                       {"name", NameOf(r.object)},
                       {"namespace", NamespaceOf(r.object)},
                       {"action", actions[r.action]},
                       {"resourceVersion", rv}});
    }
    if (dry_run || last == 0) last = store_->CurrentRevision();
    SendJson(res, 200, {{"items", items}, {"dryRun", dry_run},
                        {"resourceVersion", std::to_string(last)}});
  });

  Put("/v1/:kind/:name/status", [this](const HttpRequest& req, HttpResponse& res,
                                       const Principal& who) {
    auto kind = KindOf(req.matches[0]);
    if (!kind) return SendError(res, kind.error());
    Json body = Json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("status") || !body["status"].is_object()) {
      return SendError(res, Error(Code::kInvalidArgument, "status update must be a JSON object",
                                  {{"status", 0, 0, "required, a map"}}));
    }
    Json obj = {{"kind", std::string(kind->kind)},
                {"metadata",
                 {{"name", std::string(req.matches[1])},
                  {"namespace", NamespaceParam(req, *kind)}}},
                {"status", body["status"]}};
    if (!kind->namespaced) obj["metadata"]["namespace"] = "";
    if (auto st = CanWriteStatus(who, KeyOf(obj)); !st) return SendError(res, st.error());
    WriteOptions wo;
    wo.dry_run = DryRun(req);
    wo.expected_revision = ResourceVersionOf(body);
    if (kind->kind == "Node" && !wo.dry_run) {
      agents_->ObserveNode(req.matches[1], req.peer_address, obj["status"]);
    }
    auto written = store_->UpdateStatus(obj, wo);
    if (!written) return SendError(res, written.error());
    SendJson(res, 200, *written);
  });

  Delete("/v1/:kind/:name", [this](const HttpRequest& req, HttpResponse& res,
                                   const Principal& who) {
    auto kind = KindOf(req.matches[0]);
    if (!kind) return SendError(res, kind.error());
    if (auto st = CanWrite(who, std::string(kind->kind), req.matches[1], true); !st) {
      return SendError(res, st.error());
    }
    WriteOptions wo;
    wo.dry_run = DryRun(req);
    auto deleted = store_->Delete(
        {std::string(kind->kind), NamespaceParam(req, *kind), req.matches[1]}, wo);
    if (!deleted) return SendError(res, deleted.error());
    SendJson(res, 200, *deleted);
  });
}

}  // namespace mentat
