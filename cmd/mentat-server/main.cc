// mentat-server: the API server, the embedded store and the controllers. With --dev it also
// runs a local agent in-process and binds 127.0.0.1 only.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <iostream>
#include <set>
#include <thread>
#include <tuple>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "apis/security_profile.h"
#include "apis/server/api_server.h"
#include "controllers/node_controller.h"
#include "controllers/reconciler.h"
#include "controllers/service_controller.h"
#include "cmd/mentat-agent/artifact_flags.h"
#include "runtimes/agent/agent.h"
#include "store/local_store.h"
#include "store/snapshot.h"

using namespace mentat;

namespace {

// 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches.
bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// The store, once no other process holds it: a server started right after another one on the
// same data directory was told to stop (a restart) waits for that one to let go, rather than
// failing while it closes its store.
Result<LocalStorePtr> OpenStoreWhenFree(const StateMachineOptions& so,
                                        std::chrono::seconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  bool said = false;
  while (true) {
    auto store = OpenLocalStore(so);
    if (store || store.error().code() != Code::kUnavailable ||
        std::chrono::steady_clock::now() >= deadline) {
      return store;
    }
    if (!said) {
      spdlog::info("store {} is in use by another process (a server still stopping?); waiting up "
                   "to {} s for it", so.dir, patience.count());
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // pacing between attempts
  }
}

Result<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgument("--listen must be HOST:PORT, got \"" + listen + "\"");
  }
  std::string host = listen.substr(0, colon);
  int port = -1;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
  }
  if (port < 0 || port > 65535) {
    return InvalidArgument("--listen: port must be 0-65535, got \"" + listen.substr(colon + 1) + "\"");
  }
  return std::make_pair(host.empty() ? std::string("127.0.0.1") : host, port);
}

// Events are short-lived: those that last happened more than `ttl` ago are deleted.
Result<int> ExpireEvents(Store* store, std::chrono::seconds ttl) {
  MT_ASSIGN_OR_RETURN(auto events, store->List("Event", {}));
  auto cutoff = std::chrono::system_clock::now() - ttl;
  int n = 0;
  for (const auto& e : events.items) {
    auto last = ParseTime(e["spec"].value("lastTimestamp", ""));
    if (last && *last > cutoff) continue;
    auto st = store->Delete(KeyOf(e));
    if (st) ++n;
  }
  return n;
}

int Fail(const Error& e) {
  std::cerr << "mentat-server: " << e.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mentat-server: the Mentat API server, store and controllers"};
  bool dev = false;
  std::string data_dir;
  std::string listen = "127.0.0.1:4646";
  std::string node_name;
  std::string log_level = "info";
  std::string restore;
  std::string snapshot_dir;
  int snapshot_interval = 86400;
  int snapshot_keep = 7;
  int64_t history_revisions = 10000;
  int history_seconds = 300;
  int compaction_interval = 30;
  int idle_timeout = 120;
  HttpLimits http_limits;
  int header_timeout = static_cast<int>(http_limits.header_timeout.count());
  uint64_t min_body_rate_kib = http_limits.min_body_rate >> 10;
  int bookmark_interval = 5;
  int event_ttl = 3600;
  int http_workers = 8;
  std::string auth = "tokens";
  std::string tokens_file;
  bool bootstrap_token = false;
  std::string bootstrap_token_file;
  std::string tls_cert, tls_key;
  bool insecure_http = false;
  std::string agent_ca_file;
  bool unsafe_no_fsync = false;
  int max_artifact_mb = 512;
  std::string artifact_grace = "1h";
  app.add_flag("--dev", dev,
               "development mode: embedded store under ./.mentat, an in-process agent, "
               "127.0.0.1 only");
  app.add_option("--data-dir", data_dir, "where the store (and, with --dev, the agent) keeps its data")
      ->capture_default_str();
  app.add_option("--listen", listen, "HOST:PORT to serve the API on")->capture_default_str();
  app.add_option("--node-name", node_name, "name of the in-process agent's node (--dev)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--restore", restore,
                 "restore this snapshot into --data-dir (which must hold no store yet), then exit")
      ->check(CLI::ExistingFile);
  app.add_option("--snapshot-dir", snapshot_dir, "take scheduled snapshots into this directory");
  app.add_option("--snapshot-interval", snapshot_interval, "seconds between scheduled snapshots")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400 * 365));
  app.add_option("--snapshot-keep", snapshot_keep, "scheduled snapshots to keep")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--history-revisions", history_revisions,
                 "watch history kept: at least this many revisions...")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--history-seconds", history_seconds, "...and at least this many seconds")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400 * 30));
  app.add_option("--compaction-interval", compaction_interval,
                 "seconds between compactions of the watch history")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--idle-timeout", idle_timeout,
                 "seconds a connection may sit idle, or a client leave its output unread, "
                 "before it is closed")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--max-connections", http_limits.max_connections,
                 "connections open at once, in all; more are answered 503 and closed. 0: the "
                 "open-file limit less an eighth of it (at least 64) for the store and uploads")
      ->capture_default_str();
  app.add_option("--max-connections-per-client", http_limits.max_connections_per_client,
                 "connections open at once from one IP address; more are answered 429 and "
                 "closed (0: no cap)")
      ->capture_default_str();
  app.add_option("--header-timeout", header_timeout,
                 "seconds a request head may take to arrive whole, however slowly it trickles "
                 "in (for a new connection: from its accept, TLS handshake included)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--min-body-rate", min_body_rate_kib,
                 "KiB/s: a request body must arrive within --header-timeout plus its length at "
                 "this rate, or its connection is closed")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30));
  app.add_option("--auth", auth,
                 "tokens: every request needs a bearer token (the default; --dev implies none). "
                 "none: no authentication, allowed only on a loopback address")
      ->capture_default_str()
      ->check(CLI::IsMember({"tokens", "none"}));
  app.add_option("--tokens-file", tokens_file,
                 "the API tokens (SHA-256 hashes, mode 0600); default DATA_DIR/tokens.yaml");
  app.add_flag("--bootstrap-token", bootstrap_token,
               "if no admin token exists yet, make one and print it (once)");
  app.add_option("--bootstrap-token-file", bootstrap_token_file,
                 "as --bootstrap-token, but write the token to this file (mode 0600, made "
                 "before the server listens) instead of printing it");
  std::string default_policy;
  app.add_option("--default-policy", default_policy,
                 "the NamespacePolicy of namespaces no stored policy names: restricted (the "
                 "default; --dev implies permissive) gives each driver a hardened profile and "
                 "refuses host root, privileged containers, host system paths and the Docker "
                 "socket; permissive admits what each service's own profile (or none) allows")
      ->check(CLI::IsMember({"restricted", "permissive"}));
  app.add_flag("--insecure-http", insecure_http,
               "allow plain HTTP on an address other than loopback (tokens cross the network in "
               "the clear; refused without it)");
  app.add_option("--tls-cert", tls_cert, "serve HTTPS with this PEM certificate chain")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", tls_key, "the PEM private key of --tls-cert")->check(CLI::ExistingFile);
  app.add_option("--agent-ca-file", agent_ca_file,
                 "PEM CA bundle that signs the certificates of agents serving https (logs and "
                 "exec go through the server to them); default: the system's CAs")
      ->check(CLI::ExistingFile);
  app.add_option("--http-workers", http_workers,
                 "threads that run API requests (object writes and watch streams hold none "
                 "while they wait)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--event-ttl", event_ttl, "seconds an Event is kept after it last happened")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400 * 30));
  app.add_option("--bookmark-interval", bookmark_interval,
                 "seconds between BOOKMARK events on a quiet watch stream")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--max-artifact-mb", max_artifact_mb,
                 "the largest artifact (a packed app rootfs) an upload may be, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--artifact-grace", artifact_grace,
                 "an artifact no Service or Allocation names is deleted once it has not been "
                 "uploaded or asked for in this long (e.g. 1h)")
      ->capture_default_str();
  std::string node_heartbeat_timeout = "15s", node_lost_after = "60s";
  app.add_option("--node-heartbeat-timeout", node_heartbeat_timeout,
                 "a node whose agent is silent this long is NotReady (e.g. 15s)")
      ->capture_default_str();
  app.add_option("--node-lost-after", node_lost_after,
                 "a node silent this long loses its allocations to other nodes (e.g. 60s)")
      ->capture_default_str();
  // The in-process agent's bounds on unpacked artifacts (--dev), as mentat-agent's.
  ArtifactFlags agent_artifact_flags;
  AddArtifactFlags(app, agent_artifact_flags);
  // For tests that prove the power-loss test can fail: acknowledgements without fsync.
  app.add_flag("--unsafe-no-fsync", unsafe_no_fsync)->group("");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  NodeLifecycleOptions lifecycle;
  for (auto [flag, text, out] : {std::tuple{"--node-heartbeat-timeout", &node_heartbeat_timeout,
                                             &lifecycle.heartbeat_timeout},
                                  std::tuple{"--node-lost-after", &node_lost_after, &lifecycle.lost_after}}) {
    auto d = ParseDuration(*text);
    if (!d || d->count() <= 0) {
      return Fail(Error(Code::kInvalidArgument, std::string(flag) + ": \"" + *text +
                                                    "\" is not a positive duration such as 15s or 1m"));
    }
    *out = *d;
  }
  auto grace = ParseDuration(artifact_grace);
  if (!grace || grace->count() <= 0) {
    return Fail(Error(Code::kInvalidArgument, "--artifact-grace: \"" + artifact_grace +
                                                  "\" is not a positive duration such as 1h"));
  }
  auto agent_artifacts = ArtifactLimitsFromFlags(agent_artifact_flags);
  if (!agent_artifacts) return Fail(agent_artifacts.error());
  if (lifecycle.lost_after < lifecycle.heartbeat_timeout) {
    return Fail(Error(Code::kInvalidArgument,
                      "--node-lost-after must be at least --node-heartbeat-timeout"));
  }

  auto hp = ParseListen(listen);
  if (!hp) return Fail(hp.error());
  auto [host, port] = *hp;
  if (dev && host != "127.0.0.1" && host != "localhost") {
    return Fail(Error(Code::kInvalidArgument,
                      "--dev serves without authentication, so it binds 127.0.0.1 only; got --listen " +
                          listen));
  }
  if (data_dir.empty()) data_dir = dev ? ".mentat" : "/var/lib/mentat/state";
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Fail(Error(Code::kInternal, "creating " + data_dir + ": " + ec.message()));
  data_dir = std::filesystem::absolute(data_dir).lexically_normal().string();
  if (!restore.empty()) {
    auto info = RestoreSnapshot(restore, data_dir);
    if (!info) return Fail(info.error());
    std::cout << "restored " << info->objects << " objects at revision " << info->revision
              << " into " << data_dir << "\n";
    return 0;
  }
  if (dev && !tls_cert.empty()) {
    return Fail(Error(Code::kInvalidArgument,
                      "--dev serves plain HTTP on 127.0.0.1 to its in-process agent; drop --tls-cert"));
  }
  if (dev) auth = "none";
  const bool loopback = IsLoopbackHost(host);
  if (auth == "none" && !loopback) {
    return Fail(Error(Code::kInvalidArgument,
                      "--auth none serves every request as admin, so it binds a loopback address "
                      "only; got --listen " + listen));
  }
  if (!loopback && tls_cert.empty() && !insecure_http) {
    return Fail(Error(Code::kInvalidArgument,
                      "--listen " + listen + " would send bearer tokens in the clear over the "
                      "network: serve HTTPS (--tls-cert, --tls-key), listen on 127.0.0.1 behind a "
                      "TLS proxy, or pass --insecure-http if this network is trusted"));
  }
  if (!loopback && tls_cert.empty()) {
    spdlog::warn("--insecure-http: serving plain HTTP on {}; bearer tokens and every request "
                 "cross the network in the clear, readable by anyone on the path", listen);
  }
  std::unique_ptr<TokenStore> tokens;
  if (auth == "tokens") {
    if (tokens_file.empty()) tokens_file = data_dir + "/tokens.yaml";
    auto t = TokenStore::Open(tokens_file);
    if (!t) return Fail(t.error());
    tokens = std::move(*t);
    if (!bootstrap_token_file.empty()) bootstrap_token = true;
    if (bootstrap_token && tokens->HasAdmin()) {
      spdlog::warn("--bootstrap-token: an admin token exists already in {}; none was made",
                   tokens_file);
    } else if (bootstrap_token) {
      auto token = tokens->Create("bootstrap-admin", Role::kAdmin);
      if (!token) return Fail(token.error());
      if (!bootstrap_token_file.empty()) {
        if (auto st = WriteSecretFile(bootstrap_token_file, *token + "\n"); !st) return Fail(st.error());
        spdlog::info("bootstrap admin token written to {} (its hash is in {})", bootstrap_token_file,
                     tokens_file);
      } else {
        std::cout << "bootstrap admin token (shown this once; its hash is in " << tokens_file
                  << "):\n" << *token << "\n" << std::flush;
      }
    } else if (!tokens->HasAdmin()) {
      spdlog::warn("no admin token in {}: start once with --bootstrap-token to make one",
                   tokens_file);
    }
  }
  if (!dev) {
    spdlog::info("running without --dev: no in-process agent; start mentat-agent on each node");
  }
  if (default_policy.empty()) default_policy = dev ? "permissive" : "restricted";
  if (default_policy == "permissive") {
    spdlog::warn("namespaces without a NamespacePolicy are permissive{}: a service that names no "
                 "security profile runs unchecked (root, host paths, privileged containers)",
                 dev ? " (--dev)" : "");
  }

  // Block the stop signals in every thread; main waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Every connection and watch stream is a descriptor: raise the soft limit to the hard one.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  StateMachineOptions so;
  so.dir = data_dir + "/store";
  so.history_revisions = history_revisions;
  so.history_age = std::chrono::seconds(history_seconds);
  if (unsafe_no_fsync) {
    spdlog::warn("--unsafe-no-fsync: writes are acknowledged before they are durable");
    so.sync = false;
  }
  auto store = OpenStoreWhenFree(so, std::chrono::seconds(30));
  if (!store) return Fail(store.error());

  // The built-in security profiles exist from the start; an operator's edits to them stay.
  for (const auto& profile : BuiltinProfiles()) {
    WriteOptions create;
    create.create_only = true;
    auto st = (*store)->Put(profile, create);
    if (!st && st.error().code() != Code::kAlreadyExists) return Fail(st.error());
  }

  auto artifacts = ArtifactStore::Open(data_dir + "/artifacts", uint64_t(max_artifact_mb) << 20);
  if (!artifacts) return Fail(artifacts.error());

  // The server's identity toward agents (agent_keys.h): its secret stays with the store.
  auto agent_keys = AgentKeys::Open(data_dir + "/agent-secret");
  if (!agent_keys) return Fail(agent_keys.error());

  ApiServerOptions ao;
  ao.agent_keys = agent_keys->get();
  ao.agent_ca_file = agent_ca_file;
  ao.artifacts = artifacts->get();
  ao.host = host == "localhost" ? "127.0.0.1" : host;
  ao.port = port;
  ao.idle_timeout = std::chrono::seconds(idle_timeout);
  http_limits.header_timeout = std::chrono::seconds(header_timeout);
  http_limits.min_body_rate = min_body_rate_kib << 10;
  ao.http_limits = http_limits;
  ao.workers = http_workers;
  ao.bookmark_interval = std::chrono::seconds(bookmark_interval);
  ao.tokens = tokens.get();
  ao.tls_cert = tls_cert;
  ao.tls_key = tls_key;
  ao.default_policy = *BuiltinPolicy(default_policy);
  ao.snapshot = [s = &(*store)->snapshotter()]() { return SnapshotText(*s, nullptr); };
  ControllerManager controllers(store->get());
  ao.metrics = [&controllers, c = &(*store)->compactor()] {
    std::vector<Metrics::Sample> out;
    for (const auto& q : controllers.QueueDepths()) {
      out.push_back({"mentat_reconcile_queue_depth", "Keys waiting in a controller's work queue.",
                     "gauge", "controller=\"" + q.controller + "\"",
                     static_cast<double>(q.depth)});
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
                   "gauge", "", static_cast<double>(c->CompactedRevision())});
    return out;
  };
  ApiServer api(store->get(), ao);
  auto bound = api.Start();
  if (!bound) return Fail(bound.error());

  controllers.Add(std::make_unique<ServiceController>(store->get(), lifecycle.heartbeat_timeout,
                                                     controllers.cache()));
  controllers.Add(std::make_unique<NodeController>(store->get(), lifecycle));
  if (auto st = controllers.Start(); !st) return Fail(st.error());

  std::unique_ptr<Agent> agent;
  std::string url = std::string(tls_cert.empty() ? "http" : "https") + "://" + ao.host + ":" + std::to_string(*bound);
  if (dev) {
    AgentOptions opts;
    opts.server = url;
    opts.node_name = node_name;
    opts.data_dir = data_dir + "/agent";
    opts.artifacts = *agent_artifacts;
    auto a = Agent::Create(opts);
    if (!a) return Fail(a.error());
    agent = std::move(*a);
    if (auto st = agent->Start(); !st) return Fail(st.error());
  }
  spdlog::info("mentat-server listening on {} (store {} at revision {}{})", url, so.dir,
               (*store)->CurrentRevision(),
               dev ? ", dev mode with local agent on node " + agent->node_name() : "");

  // Watch history beyond the window is compacted in the background.
  std::mutex compact_mu;
  std::condition_variable compact_cv;
  bool stopping = false;
  std::thread compactor([&] {
    std::unique_lock<std::mutex> lock(compact_mu);
    while (!compact_cv.wait_for(lock, std::chrono::seconds(compaction_interval), [&] { return stopping; })) {
      if (auto r = (*store)->compactor().CompactToWindow(); !r) {
        spdlog::warn("compaction: {}", r.error().message());
      }
      if (auto refs = ArtifactReferences(**store); !refs) {
        spdlog::warn("artifact garbage collection: {}", refs.error().message());
      } else {
        std::set<std::string> referenced;
        for (const auto& [digest, by] : *refs) referenced.insert(digest);
        auto deleted = (*artifacts)->CollectGarbage(
            referenced, std::chrono::duration_cast<std::chrono::seconds>(*grace));
        if (!deleted) spdlog::warn("artifact garbage collection: {}", deleted.error().message());
        for (const auto& d : deleted ? *deleted : std::vector<std::string>()) {
          spdlog::info("artifact {} deleted: no Service or Allocation names it", d);
        }
      }
      if (auto n = ExpireEvents(store->get(), std::chrono::seconds(event_ttl)); !n) {
        spdlog::warn("expiring events: {}", n.error().message());
      } else if (*n) {
        spdlog::debug("expired {} events", *n);
      }
    }
  });
  // Scheduled snapshots (seed 002: daily, keep 7), the first one at startup.
  std::thread snapshotter([&] {
    if (snapshot_dir.empty()) return;
    std::unique_lock<std::mutex> lock(compact_mu);
    do {
      auto path = TakeScheduledSnapshot((*store)->snapshotter(), snapshot_dir, snapshot_keep);
      if (path) {
        spdlog::info("snapshot written to {}", *path);
      } else {
        spdlog::error("scheduled snapshot failed: {}", path.error().message());
      }
    } while (!compact_cv.wait_for(lock, std::chrono::seconds(snapshot_interval),
                                  [&] { return stopping; }));
  });

  int sig = 0;
  sigwait(&stop_signals, &sig);
  {
    std::lock_guard<std::mutex> lock(compact_mu);
    stopping = true;
  }
  compact_cv.notify_all();
  compactor.join();
  snapshotter.join();
  spdlog::info("mentat-server: {} received, shutting down (workloads keep running)",
               strsignal(sig));
  if (agent) agent->Stop();
  controllers.Stop();
  (*store)->CloseWatchers();
  api.Stop();
  return 0;
}
