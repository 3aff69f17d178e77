#include "cmd/mentat-server/flags.h"

#include <unistd.h>

#include <cctype>
#include <tuple>

#include <spdlog/spdlog.h>

#include "apis/service.h"

namespace mentat {
namespace {

// 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches.
bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
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
    return InvalidArgument("--listen: port must be 0-65535, got \"" + listen.substr(colon + 1) +
                           "\"");
  }
  return std::make_pair(host.empty() ? std::string("127.0.0.1") : host, port);
}

// The cluster flags: every member parsed, this one found, its peer address defaulted. Without
// --initial-cluster, this server is a cluster of one, named --name or after the host.
Status ResolveClusterFlags(ServerFlags& f) {
  if (f.initial_cluster.empty()) {
    if (f.initial_cluster_state == "existing") {
      return InvalidArgument("--initial-cluster-state existing needs --initial-cluster: the members of the "
                             "cluster this server joins, itself included (as `mt cluster add` printed it)");
    }
    f.name_is_default = f.name.empty();
    if (f.name.empty()) f.name = ThisHostLabel();
    if (!raft::IsMemberName(f.name)) {
      return InvalidArgument(std::string(f.name_is_default ? "the host's name \"" : "--name \"") + f.name +
                             "\" is not a member name (a DNS label: a-z, 0-9, '-', at most 63)" +
                             (f.name_is_default ? "; give one with --name" : ""));
    }
  } else {
    MT_ASSIGN_OR_RETURN(f.cluster, raft::ParseInitialCluster(f.initial_cluster));
    if (f.name.empty()) {
      return InvalidArgument("--initial-cluster needs --name: which of its members this server is");
    }
    MT_ASSIGN_OR_RETURN(raft::ClusterMemberSpec self, raft::FindMember(f.cluster, f.name));
    if (f.peer_listen.empty()) f.peer_listen = self.peer_address;
  }
  const int tls_files = !f.peer_cert_file.empty() + !f.peer_key_file.empty() + !f.peer_trusted_ca_file.empty();
  if (tls_files != 0 && tls_files != 3) {
    return InvalidArgument("peer TLS needs all three of --peer-cert-file, --peer-key-file and "
                           "--peer-trusted-ca-file");
  }
  // Without TLS, anyone who reaches a peer port could join the log: only this machine may.
  auto refuse_remote = [&](const std::string& flag, const std::string& address) -> Status {
    auto colon = address.rfind(':');
    if (tls_files == 3 || IsLoopbackHost(address.substr(0, colon))) return {};
    return InvalidArgument(flag + ": " + address + " is not a loopback address; members on other "
                           "machines need peer TLS with the cluster's CA (--peer-cert-file, "
                           "--peer-key-file, --peer-trusted-ca-file), or anyone who reaches the "
                           "peer port could join the cluster");
  };
  for (const auto& m : f.cluster) {
    MT_RETURN_IF_ERROR(refuse_remote("--initial-cluster (member " + m.name + ")", m.peer_address));
  }
  if (!f.peer_listen.empty()) {
    if (f.cluster.empty()) {
      // Alone, --peer-listen is also the address the members it is grown with dial.
      MT_ASSIGN_OR_RETURN(auto parsed, raft::ParseInitialCluster(f.name + "=" + f.peer_listen, "--peer-listen"));
      (void)parsed;
    }
    MT_RETURN_IF_ERROR(refuse_remote("--peer-listen", f.peer_listen));
  }
  if (f.node_name.empty() && !f.cluster.empty()) f.node_name = f.name;
  return {};
}

}  // namespace

void AddServerFlags(CLI::App& app, ServerFlags& f) {
  app.add_flag("--dev", f.dev,
               "development mode: embedded store under ./.mentat, an in-process agent, "
               "127.0.0.1 only");
  app.add_option("--data-dir", f.data_dir,
                 "where the store (and, with --dev, the agent) keeps its data")
      ->capture_default_str();
  app.add_option("--listen", f.listen, "HOST:PORT to serve the API on")->capture_default_str();
  app.add_option("--node-name", f.node_name,
                 "name of the in-process agent's node (--dev; default: --name, else the host's)");
  app.add_option("--name", f.name,
                 "this server's member name in its cluster (default without --initial-cluster: "
                 "the host's name; a data directory keeps the name it was first started with)");
  app.add_option("--peer-listen", f.peer_listen,
                 "HOST:PORT for the other members' Raft traffic (default: this member's address "
                 "in --initial-cluster; without it, the address recorded before, else none: a "
                 "cluster of one needs one before `mt cluster add` can grow it)");
  app.add_option("--initial-cluster", f.initial_cluster,
                 "every member of a replicated control plane, this one included, as "
                 "NAME=HOST:PORT,... (their peer addresses); the same list on every member. "
                 "Without it, the server is a cluster of one");
  app.add_option("--cluster-name", f.cluster_name,
                 "the cluster's name: peers that name another are refused")
      ->capture_default_str();
  app.add_option("--initial-cluster-state", f.initial_cluster_state,
                 "new: the members of --initial-cluster make a new cluster; existing: this member "
                 "joins a running one, after `mt cluster add` named it there")
      ->capture_default_str()
      ->check(CLI::IsMember({"new", "existing"}));
  app.add_flag("--force-new-cluster", f.force_new_cluster,
               "UNSAFE, after a majority of the members is lost for good: make this member's data "
               "a cluster of one (writes only the lost members held are gone); run it once, then "
               "drop the flag and grow the cluster with `mt cluster add`");
  app.add_option("--raft-snapshot-count", f.raft_snapshot_count,
                 "in a replicated control plane, compact the Raft log after this many entries "
                 "(etcd's --snapshot-count); a member too far behind is sent the whole state")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{2}, uint64_t{1} << 40));
  app.add_option("--raft-max-snapshot-mb", f.raft_max_snapshot_mb,
                 "the largest state (MiB) a member takes from a leader that sends it whole; a "
                 "larger one is refused and deleted, so that a broken peer cannot fill the disk")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30));
  app.add_option("--peer-cert-file", f.peer_cert_file,
                 "this member's certificate (PEM) for TLS on the peer port; it must name the "
                 "host the others dial (an IP or DNS subjectAltName)")
      ->check(CLI::ExistingFile);
  app.add_option("--peer-key-file", f.peer_key_file, "the private key of --peer-cert-file (PEM)")
      ->check(CLI::ExistingFile);
  app.add_option("--peer-trusted-ca-file", f.peer_trusted_ca_file,
                 "the cluster's CA (PEM): the only issuer whose members are let in, both ways")
      ->check(CLI::ExistingFile);
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--restore", f.restore,
                 "restore this snapshot into --data-dir (which must hold no store yet), then exit")
      ->check(CLI::ExistingFile);
  app.add_option("--snapshot-dir", f.snapshot_dir, "take scheduled snapshots into this directory");
  app.add_option("--snapshot-interval", f.snapshot_interval, "seconds between scheduled snapshots")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400 * 365));
  app.add_option("--snapshot-keep", f.snapshot_keep, "scheduled snapshots to keep")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--history-revisions", f.history_revisions,
                 "watch history kept: at least this many revisions...")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--history-seconds", f.history_seconds, "...and at least this many seconds")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400 * 30));
  app.add_option("--compaction-interval", f.compaction_interval,
                 "seconds between compactions of the watch history")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--idle-timeout", f.idle_timeout,
                 "seconds a connection may sit idle, or a client leave its output unread, "
                 "before it is closed")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--max-connections", f.http_limits.max_connections,
                 "connections open at once, in all; more are answered 503 and closed. 0: the "
                 "open-file limit less an eighth of it (at least 64) for the store and uploads")
      ->capture_default_str();
  app.add_option("--max-connections-per-client", f.http_limits.max_connections_per_client,
                 "connections open at once from one IP address; more are answered 429 and "
                 "closed (0: no cap)")
      ->capture_default_str();
  app.add_option("--header-timeout", f.header_timeout,
                 "seconds a request head may take to arrive whole, however slowly it trickles "
                 "in (for a new connection: from its accept, TLS handshake included)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--min-body-rate", f.min_body_rate_kib,
                 "KiB/s: a request body must arrive within --header-timeout plus its length at "
                 "this rate, or its connection is closed")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30));
  app.add_option("--auth", f.auth,
                 "tokens: every request needs a bearer token (the default; --dev implies none). "
                 "none: no authentication, allowed only on a loopback address")
      ->capture_default_str()
      ->check(CLI::IsMember({"tokens", "none"}));
  app.add_option("--tokens-file", f.tokens_file,
                 "the API tokens (SHA-256 hashes, mode 0600); default DATA_DIR/tokens.yaml");
  app.add_flag("--bootstrap-token", f.bootstrap_token,
               "if no admin token exists yet, make one and print it (once)");
  app.add_option("--bootstrap-token-file", f.bootstrap_token_file,
                 "as --bootstrap-token, but write the token to this file (mode 0600, made "
                 "before the server listens) instead of printing it");
  app.add_option("--default-policy", f.default_policy,
                 "the NamespacePolicy of namespaces no stored policy names: restricted (the "
                 "default; --dev implies permissive) gives each driver a hardened profile and "
                 "refuses host root, privileged containers, host system paths and the Docker "
                 "socket; permissive admits what each service's own profile (or none) allows")
      ->check(CLI::IsMember({"restricted", "permissive"}));
  app.add_flag("--insecure-http", f.insecure_http,
               "allow plain HTTP on an address other than loopback (tokens cross the network in "
               "the clear; refused without it)");
  app.add_option("--tls-cert", f.tls_cert, "serve HTTPS with this PEM certificate chain")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", f.tls_key, "the PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--agent-ca-file", f.agent_ca_file,
                 "PEM CA bundle that signs the certificates of agents serving https (logs and "
                 "exec go through the server to them); default: the system's CAs")
      ->check(CLI::ExistingFile);
  app.add_option("--http-workers", f.http_workers,
                 "threads that run API requests (object writes and watch streams hold none "
                 "while they wait)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--event-ttl", f.event_ttl, "seconds an Event is kept after it last happened")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400 * 30));
  app.add_option("--bookmark-interval", f.bookmark_interval,
                 "seconds between BOOKMARK events on a quiet watch stream")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--max-artifact-mb", f.max_artifact_mb,
                 "the largest artifact (a packed app rootfs) an upload may be, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--artifact-grace", f.artifact_grace,
                 "an artifact no Service or Allocation names is deleted once it has not been "
                 "uploaded or asked for in this long (e.g. 1h)")
      ->capture_default_str();
  app.add_option("--node-heartbeat-timeout", f.node_heartbeat_timeout,
                 "a node whose agent is silent this long is NotReady (e.g. 15s)")
      ->capture_default_str();
  app.add_option("--node-lost-after", f.node_lost_after,
                 "a node silent this long loses its allocations to other nodes (e.g. 60s)")
      ->capture_default_str();
  // The in-process agent's bounds on unpacked artifacts (--dev), as mentat-agent's.
  AddArtifactFlags(app, f.agent_artifact_flags);
  // For tests that prove the power-loss test can fail: acknowledgements without fsync.
  app.add_flag("--unsafe-no-fsync", f.unsafe_no_fsync)->group("");
}

Status ResolveServerFlags(ServerFlags& f) {
  for (auto [flag, text, out] :
       {std::tuple{"--node-heartbeat-timeout", &f.node_heartbeat_timeout,
                   &f.lifecycle.heartbeat_timeout},
        std::tuple{"--node-lost-after", &f.node_lost_after, &f.lifecycle.lost_after}}) {
    auto d = ParseDuration(*text);
    if (!d || d->count() <= 0) {
      return InvalidArgument(std::string(flag) + ": \"" + *text +
                             "\" is not a positive duration such as 15s or 1m");
    }
    *out = *d;
  }
  auto grace = ParseDuration(f.artifact_grace);
  if (!grace || grace->count() <= 0) {
    return InvalidArgument("--artifact-grace: \"" + f.artifact_grace +
                           "\" is not a positive duration such as 1h");
  }
  f.artifact_grace_seconds = std::chrono::duration_cast<std::chrono::seconds>(*grace);
  MT_ASSIGN_OR_RETURN(f.agent_artifacts, ArtifactLimitsFromFlags(f.agent_artifact_flags));
  if (f.lifecycle.lost_after < f.lifecycle.heartbeat_timeout) {
    return InvalidArgument("--node-lost-after must be at least --node-heartbeat-timeout");
  }

  MT_ASSIGN_OR_RETURN(std::tie(f.host, f.port), ParseListen(f.listen));
  if (f.dev && f.host != "127.0.0.1" && f.host != "localhost") {
    return InvalidArgument(
        "--dev serves without authentication, so it binds 127.0.0.1 only; got --listen " +
        f.listen);
  }
  if (f.data_dir.empty()) f.data_dir = f.dev ? ".mentat" : "/var/lib/mentat/state";
  return ResolveClusterFlags(f);
}

Status CheckServingFlags(ServerFlags& f) {
  if (f.dev && !f.tls_cert.empty()) {
    return InvalidArgument(
        "--dev serves plain HTTP on 127.0.0.1 to its in-process agent; drop --tls-cert");
  }
  if (f.dev) f.auth = "none";
  f.loopback = IsLoopbackHost(f.host);
  if (f.auth == "none" && !f.loopback) {
    return InvalidArgument(
        "--auth none serves every request as admin, so it binds a loopback address only; got "
        "--listen " +
        f.listen);
  }
  if (!f.loopback && f.tls_cert.empty() && !f.insecure_http) {
    return InvalidArgument(
        "--listen " + f.listen +
        " would send bearer tokens in the clear over the "
        "network: serve HTTPS (--tls-cert, --tls-key), listen on 127.0.0.1 behind a "
        "TLS proxy, or pass --insecure-http if this network is trusted");
  }
  if (!f.loopback && f.tls_cert.empty()) {
    spdlog::warn(
        "--insecure-http: serving plain HTTP on {}; bearer tokens and every request "
        "cross the network in the clear, readable by anyone on the path",
        f.listen);
  }
  return {};
}

void AnnounceServingMode(ServerFlags& f) {
  if (!f.dev) {
    spdlog::info("running without --dev: no in-process agent; start mentat-agent on each node");
  }
  if (f.default_policy.empty()) f.default_policy = f.dev ? "permissive" : "restricted";
  if (f.default_policy == "permissive") {
    spdlog::warn(
        "namespaces without a NamespacePolicy are permissive{}: a service that names no "
        "security profile runs unchecked (root, host paths, privileged containers)",
        f.dev ? " (--dev)" : "");
  }
}

}  // namespace mentat
