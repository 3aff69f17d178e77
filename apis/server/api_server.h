// The HTTP API of mentat-server (ARCHITECTURE.md, "The HTTP API contract"). A thin edge: it
// parses a request into a typed store call, validates at the edge through apis/, and maps
// every Error to the JSON error body.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "apis/artifacts/store.h"
#include "apis/error.h"
#include "apis/kind_registry.h"
#include "apis/namespace_policy.h"
#include "apis/server/admission.h"
#include "apis/server/agent_proxy.h"
#include "apis/server/auth.h"
#include "apis/server/authorization.h"
#include "apis/server/http_server.h"
#include "apis/server/metrics.h"
#include "apis/server/rate_limited_log.h"
#include "apis/yaml.h"
#include "store/store.h"


namespace mentat {

// The largest apply request: several manifests of up to kMaxManifestBytes each.
inline constexpr size_t kMaxApplyBytes = 8 << 20;

struct ApiServerOptions {
  std::string host = "127.0.0.1";
  int port = 4646;  // 0 picks a free port
  std::chrono::seconds bookmark_interval{5};
  int workers = 8;  // request handlers; watch streams and PUTs waiting for fsync take none
  std::chrono::seconds idle_timeout{120};
  HttpLimits http_limits;  // connection caps, head and body deadlines
  std::string tls_cert;  // HTTPS when both are set
  std::string tls_key;
  // Bearer tokens and their roles; nullptr serves every request as admin (--dev, --auth none).
  TokenStore* tokens = nullptr;
  // More samples for /metrics, computed at scrape time (e.g. reconcile queue depths).
  std::function<std::vector<Metrics::Sample>()> metrics;
  // Produces a consistent snapshot for GET /v1/snapshot.
  std::function<Result<std::string>()> snapshot;
  // GET /v1/cluster: the control plane's members and leader (ServerBackend::ClusterStatus).
  std::function<Json()> cluster;
  // Whether this server can serve (its cluster member takes part in the cluster): an error makes
  // /healthz and /readyz answer 503 with its message. nullptr: always.
  std::function<Status()> health;
  // Membership changes (ServerBackend::ChangeCluster): op "add" (name, peer address), "remove"
  // (name), "transfer-leader" (name). nullptr: none can be made (503).
  std::function<Status(const std::string& op, const std::string& name, const std::string& peer)> change_cluster;
  // /v1/artifacts: app rootfs archives uploaded by `mt apply`. nullptr: none are stored (503).
  ArtifactStore* artifacts = nullptr;
  // The NamespacePolicy of namespaces no stored one names (apis/namespace_policy.h).
  Json default_policy = BuiltinRestrictedPolicy();
  // The server's keys toward node agents (logs and exec go through it: agent_proxy.h).
  // nullptr: keys from a secret that lasts as long as this server.
  const AgentKeys* agent_keys = nullptr;
  std::string agent_ca_file;  // verifies agents that serve https; "" = the system's CAs
};

class ApiServer {
 public:
  ApiServer(Store* store, ApiServerOptions opts);
  ~ApiServer();

  // Binds and starts serving on a background thread. Returns the bound port.
  Result<int> Start();
  void Stop();

  // Open watch streams.
  size_t WatchStreams() const;

 private:
  using AuthedHandler =
      std::function<void(const HttpRequest&, HttpResponse&, const Principal&)>;
  // What PUT /v1/:kind/:name learned of its body once normalized (routes_objects.cc).
  struct PutBody {
    bool has_metadata = false;
    bool explicit_ns = false;
    std::vector<Json> objects;
  };

  // Registers every route, area by area, in the order they are matched.
  void Routes();
  // Routes that authenticate first (the principal is passed on), and the probes, which don't.
  HttpHandler Secure(AuthedHandler h);
  void Get(const std::string& pattern, AuthedHandler h);
  void Put(const std::string& pattern, AuthedHandler h);
  void Post(const std::string& pattern, AuthedHandler h);
  void Delete(const std::string& pattern, AuthedHandler h);
  void Probe(const std::string& pattern, HttpHandler h);

  // routes_admin.cc: probes, snapshots, tokens, metrics, whoami.
  void AdminRoutes();
  // A probe's answer: 200 with `fine` as its status, or 503 with why opts_.health failed.
  void AnswerProbe(HttpResponse& res, const std::string& fine);
  void ListTokens(HttpResponse& res, const Principal& who);
  void CreateToken(const HttpRequest& req, HttpResponse& res, const Principal& who);
  // A membership change by an admin, answered with the cluster's status and `status`.
  void ChangeCluster(HttpResponse& res, const Principal& who, const std::string& op, const std::string& name,
                     const std::string& peer, int status);
  void RevokeToken(const HttpRequest& req, HttpResponse& res, const Principal& who);
  void ServeMetrics(HttpResponse& res);
  // routes_artifacts.cc: /v1/artifacts.
  void ArtifactRoutes();
  bool ArtifactsOff(HttpResponse& res);
  void ListArtifacts(HttpResponse& res, const Principal& who);
  void GetArtifact(const HttpRequest& req, HttpResponse& res, const Principal& who);
  void PutArtifact(const HttpRequest& req, HttpResponse& res, const Principal& who);
  // routes_agents.cc: logs, exec and the node agent key, through the agent proxy.
  void AgentRoutes();
  // routes_objects.cc: list, get, put, status and delete of /v1/:kind.
  void ObjectRoutes();
  void ListObjects(const HttpRequest& req, HttpResponse& res, const Principal& who);
  void GetObject(const HttpRequest& req, HttpResponse& res, const Principal& who);
  void PutObject(const HttpRequest& req, HttpResponse& res, const Principal& who);
  Result<PutBody> DecodePutBody(const HttpRequest& req, const KindInfo& kind,
                                const std::string& name);
  Result<Json> CheckPutObject(const HttpRequest& req, const KindInfo& kind,
                              const std::string& name, PutBody body, const Principal& who);
  void PutStatus(const HttpRequest& req, HttpResponse& res, const Principal& who);
  void DeleteObject(const HttpRequest& req, HttpResponse& res, const Principal& who);
  // routes_watch.cc: GET /v1/:kind?watch=true, an NDJSON stream of the store's events.
  void WatchObjects(const HttpRequest& req, HttpResponse& res, const KindInfo& kind,
                    std::optional<LabelSelector> selector, const std::string& ns);
  // routes_apply.cc: POST /v1/apply, with apply sets and prune.
  void ApplyRoutes();
  void Apply(const HttpRequest& req, HttpResponse& res, const Principal& who);
  Result<std::vector<Json>> DecodeApply(const HttpRequest& req,
                                        std::map<std::string, std::string>& first_seen);
  Result<std::vector<ObjectKey>> LabelApplySet(const HttpRequest& req, const Principal& who,
                                               std::vector<Json>& objects,
                                               const std::map<std::string, std::string>& first_seen);

  Result<Principal> Authenticate(const HttpRequest& req) const;
  // The HTTP server's own samples for /metrics: connections, refusals, failed logins.
  std::vector<Metrics::Sample> HttpSamples() const;
  // Answers 401 with a WWW-Authenticate challenge; counts and logs (rate-limited) the failure.
  void Unauthenticated(HttpResponse& res, const Error& e, const std::string& peer);
  // Every route but the probes authenticates from the request head, before its body is read.
  std::optional<HttpResponse> CheckHead(const HttpRequest& head, const std::string& peer,
                                        const std::set<std::string>& probes);
  Status CanWriteStatus(const Principal& who, const ObjectKey& key);
  // Decode result -> canonical objects, each admitted (apis/server/admission.h).
  Result<std::vector<Json>> NormalizeAndAdmit(const Document& doc, const std::string& default_name);
  // Every artifact a Service names as its rootfs is stored here (an error at its field
  // otherwise), and is marked used so that garbage collection spares it.
  Status CheckArtifacts(const std::vector<Json>& objects, const SourceMap& marks);

  Store* store_;
  ApiServerOptions opts_;
  Admission admission_;
  NodeAuthorizer node_auth_;
  Metrics metrics_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<AgentKeys> own_agent_keys_;  // when the options give none
  std::unique_ptr<AgentProxy> agents_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> auth_failures_{0};
  RateLimitedLog auth_log_;
  std::set<std::string> probes_;  // the routes that answer unauthenticated (Probe)
};

}  // namespace mentat
