// mentat-server: the API server, the embedded store and the controllers. With --dev it also
// runs a local agent in-process and binds 127.0.0.1 only.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "apis/artifacts/store.h"
#include "apis/security_profile.h"
#include "apis/server/api_server.h"
#include "cmd/mentat-server/backend.h"
#include "cmd/mentat-server/flags.h"
#include "cmd/mentat-server/maintenance.h"
#include "controllers/events.h"
#include "controllers/manager.h"
#include "controllers/registry.h"
#include "runtimes/agent/agent.h"
#include "store/snapshot.h"

using namespace mentat;

namespace {

// Blocks the stop signals in every thread (main waits for them with sigwait, and they are
// returned), ignores SIGPIPE, and raises the open-file limit: every connection and watch
// stream is a descriptor, so the soft limit goes up to the hard one.
sigset_t PrepareProcess() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  return stop_signals;
}

int Fail(const Error& e) {
  std::cerr << "mentat-server: " << e.ToString() << "\n";
  return 1;
}

// The API tokens, with the bootstrap admin token made when asked for and none exists yet.
Result<std::unique_ptr<TokenStore>> OpenTokens(ServerFlags& f) {
  if (f.tokens_file.empty()) f.tokens_file = f.data_dir + "/tokens.yaml";
  MT_ASSIGN_OR_RETURN(auto tokens, TokenStore::Open(f.tokens_file));
  bool bootstrap = f.bootstrap_token || !f.bootstrap_token_file.empty();
  if (bootstrap && tokens->HasAdmin()) {
    spdlog::warn("--bootstrap-token: an admin token exists already in {}; none was made",
                 f.tokens_file);
  } else if (bootstrap) {
    MT_ASSIGN_OR_RETURN(auto token, tokens->Create("bootstrap-admin", Role::kAdmin));
    if (!f.bootstrap_token_file.empty()) {
      MT_RETURN_IF_ERROR(WriteSecretFile(f.bootstrap_token_file, token + "\n"));
      spdlog::info("bootstrap admin token written to {} (its hash is in {})",
                   f.bootstrap_token_file, f.tokens_file);
    } else {
      std::cout << "bootstrap admin token (shown this once; its hash is in " << f.tokens_file
                << "):\n" << token << "\n" << std::flush;
    }
  } else if (!tokens->HasAdmin()) {
    spdlog::warn("no admin token in {}: start once with --bootstrap-token to make one",
                 f.tokens_file);
  }
  return tokens;
}

// The controllers' queues and reconciles, and the store's compaction, for /metrics.
std::vector<Metrics::Sample> ControllerMetrics(ControllerManager& controllers, Compactor& store) {
  std::vector<Metrics::Sample> out;
  for (const auto& q : controllers.QueueDepths()) {
    out.push_back({"mentat_reconcile_queue_depth", "Keys waiting in a controller's work queue.",
                   "gauge", "controller=\"" + q.controller + "\"", static_cast<double>(q.depth)});
  }
  // Each family's samples together, as the exposition format wants.
  auto stats = controllers.Stats();
  for (const auto& st : stats) {
    std::string l = "controller=\"" + st.controller + "\"";
    out.push_back({"mentat_reconcile_total", "Reconciles by controller and result.", "counter",
                   l + ",result=\"success\"", static_cast<double>(st.successes)});
    out.push_back({"mentat_reconcile_total", "Reconciles by controller and result.", "counter",
                   l + ",result=\"error\"", static_cast<double>(st.errors)});
  }
  for (const auto& st : stats) {
    out.push_back({"mentat_reconcile_seconds_total", "Time spent reconciling, by controller.",
                   "counter", "controller=\"" + st.controller + "\"", st.seconds});
  }
  out.push_back({"mentat_store_compacted_revision",
                 "Watch history at and below this revision is compacted (a watch from there gets 410).",
                 "gauge", "", static_cast<double>(store.CompactedRevision())});
  return out;
}

// --dev's in-process agent, serving the node this server runs on.
Result<std::unique_ptr<Agent>> StartDevAgent(const ServerFlags& f, const std::string& url) {
  AgentOptions opts;
  opts.server = url;
  opts.node_name = f.node_name;
  opts.data_dir = f.data_dir + "/agent";
  opts.artifacts = f.agent_artifacts;
  MT_ASSIGN_OR_RETURN(auto agent, Agent::Create(opts));
  MT_RETURN_IF_ERROR(agent->Start());
  return agent;
}

// The built-in security profiles exist from the start; an operator's edits to them stay.
Status EnsureBuiltinProfiles(Store& store) {
  for (const auto& profile : BuiltinProfiles()) {
    WriteOptions create;
    create.create_only = true;
    auto st = store.Put(profile, create);
    if (!st && st.error().code() != Code::kAlreadyExists) return std::unexpected(st.error());
  }
  return {};
}

// Every registered controller, and the server's maintenance as periodic runnables.
void AddControllers(ControllerManager& controllers, const ServerFlags& f, ServerBackend& backend,
                    ArtifactStore* artifacts) {
  Store* store = &backend.store();
  ControllerContext ctx;
  ctx.store = store;
  ctx.cache = controllers.cache();
  ctx.node_lifecycle = f.lifecycle;
  for (auto& r : ControllerRegistry::Global().MakeAll(ctx)) controllers.Add(std::move(r));
  // Compaction, artifact GC and event expiry share one interval and run in that order.
  std::chrono::seconds maintenance_interval(f.compaction_interval);
  controllers.AddPeriodic(CompactionRunnable(&backend.compactor(), maintenance_interval));
  controllers.AddPeriodic(ArtifactGcRunnable(store, artifacts, f.artifact_grace_seconds,
                                             maintenance_interval));
  controllers.AddPeriodic(EventExpiryRunnable(store, std::chrono::seconds(f.event_ttl),
                                              maintenance_interval));
  // The leader makes the built-in profiles, once it leads (a cluster of one made them before
  // serving); until it succeeded, every interval is a retry.
  auto made = std::make_shared<bool>(false);
  controllers.AddPeriodic({"builtin-profiles", maintenance_interval, /*run_at_start=*/true, [store, made] {
    if (*made) return;
    auto st = EnsureBuiltinProfiles(*store);
    if (!st) spdlog::warn("the built-in security profiles could not be written yet: {}", st.error().message());
    *made = st.has_value();
  }});
  if (!f.snapshot_dir.empty()) {
    controllers.AddPeriodic(SnapshotRunnable(&backend.snapshotter(), f.snapshot_dir, f.snapshot_keep,
                                             std::chrono::seconds(f.snapshot_interval)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mentat-server: the Mentat API server, store and controllers"};
  ServerFlags f;
  AddServerFlags(app, f);
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(f.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (auto st = ResolveServerFlags(f); !st) return Fail(st.error());
  std::error_code ec;
  std::filesystem::create_directories(f.data_dir, ec);
  if (ec) return Fail(Error(Code::kInternal, "creating " + f.data_dir + ": " + ec.message()));
  f.data_dir = std::filesystem::absolute(f.data_dir).lexically_normal().string();
  if (!f.restore.empty()) {
    auto info = RestoreSnapshot(f.restore, f.data_dir);
    if (!info) return Fail(info.error());
    std::cout << "restored " << info->objects << " objects at revision " << info->revision
              << " into " << f.data_dir << "\n";
    return 0;
  }
  if (auto st = CheckServingFlags(f); !st) return Fail(st.error());
  std::unique_ptr<TokenStore> tokens;
  if (f.auth == "tokens") {
    auto t = OpenTokens(f);
    if (!t) return Fail(t.error());
    tokens = std::move(*t);
  }
  AnnounceServingMode(f);

  const sigset_t stop_signals = PrepareProcess();

  StateMachineOptions so;
  so.dir = f.data_dir + "/store";
  so.history_revisions = f.history_revisions;
  so.history_age = std::chrono::seconds(f.history_seconds);
  if (f.unsafe_no_fsync) {
    spdlog::warn("--unsafe-no-fsync: writes are acknowledged before they are durable");
    so.sync = false;
  }
  auto backend = OpenBackend(f, so, std::chrono::seconds(30));
  if (!backend) return Fail(backend.error());
  // From here a failure stops the member first, so that the reason is the last line printed
  // (the member's own last lines come out as it stops).
  auto fail = [&](const Error& e) {
    (*backend)->Close();
    return Fail(e);
  };
  // A cluster of one leads at once: what it serves has the built-in profiles from the start.
  if ((*backend)->member().SoleVoter()) {
    if (auto st = EnsureBuiltinProfiles((*backend)->store()); !st) return fail(st.error());
  }
  Store* store = &(*backend)->store();

  auto artifacts = ArtifactStore::Open(f.data_dir + "/artifacts", uint64_t(f.max_artifact_mb) << 20);
  if (!artifacts) return fail(artifacts.error());

  // The server's identity toward agents (agent_keys.h): its secret stays with the store.
  auto agent_keys = AgentKeys::Open(f.data_dir + "/agent-secret");
  if (!agent_keys) return fail(agent_keys.error());

  ApiServerOptions ao;
  ao.agent_keys = agent_keys->get();
  ao.agent_ca_file = f.agent_ca_file;
  ao.artifacts = artifacts->get();
  ao.host = f.host == "localhost" ? "127.0.0.1" : f.host;
  ao.port = f.port;
  ao.idle_timeout = std::chrono::seconds(f.idle_timeout);
  f.http_limits.header_timeout = std::chrono::seconds(f.header_timeout);
  f.http_limits.min_body_rate = f.min_body_rate_kib << 10;
  ao.http_limits = f.http_limits;
  ao.workers = f.http_workers;
  ao.bookmark_interval = std::chrono::seconds(f.bookmark_interval);
  ao.tokens = tokens.get();
  ao.tls_cert = f.tls_cert;
  ao.tls_key = f.tls_key;
  ao.default_policy = *BuiltinPolicy(f.default_policy);
  ao.snapshot = [s = &(*backend)->snapshotter()]() { return SnapshotText(*s, nullptr); };
  ao.cluster = [b = backend->get()] { return b->ClusterStatus(); };
  ao.health = [b = backend->get()] { return b->member().Health(); };
  ao.change_cluster = [b = backend->get()](const std::string& op, const std::string& name, const std::string& peer) {
    return b->ChangeCluster(op, name, peer);
  };

  ControllerManager controllers(store, (*backend)->gate());
  ao.metrics = [&controllers, c = &(*backend)->compactor()] { return ControllerMetrics(controllers, *c); };
  ApiServer api(store, ao);
  auto bound = api.Start();
  if (!bound) return fail(bound.error());

  AddControllers(controllers, f, **backend, artifacts->get());
  if (auto st = controllers.Start(); !st) return fail(st.error());

  std::unique_ptr<Agent> agent;
  std::string url = std::string(f.tls_cert.empty() ? "http" : "https") + "://" + ao.host + ":" +
                    std::to_string(*bound);
  if (f.dev) {
    auto a = StartDevAgent(f, url);
    if (!a) return fail(a.error());
    agent = std::move(*a);
  }
  const Json members = (*backend)->ClusterStatus().value("members", Json::array());
  std::string peer;
  for (const auto& m : members) {
    if (m.value("name", "") == (*backend)->member().name()) peer = m.value("peerURL", "");
  }
  spdlog::info("mentat-server listening on {} (store {} at revision {}, member {} of {} with {}{})", url, so.dir,
               store->CurrentRevision(), (*backend)->member().name(),
               members.size() == 1 ? "a cluster of one" : "a cluster of " + std::to_string(members.size()),
               peer.empty() ? "no peer port" : "its peer port on " + peer,
               f.dev ? ", dev mode with local agent on node " + agent->node_name() : "");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("mentat-server: {} received, shutting down (workloads keep running)",
               strsignal(sig));
  if (agent) agent->Stop();
  controllers.Stop();
  (*backend)->Close();
  api.Stop();
  return 0;
}
