// mentat-server's flags: declared on the command line (AddServerFlags), then checked and
// resolved into what the server is wired from (ResolveServerFlags): durations parsed, --dev's
// implications applied, and the refusals of unsafe combinations (an unauthenticated or
// plain-HTTP server on the network) made before anything starts.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "apis/error.h"
#include "apis/server/connection_limits.h"
#include "cmd/mentat-agent/artifact_flags.h"
#include "controllers/registry.h"
#include "store/raft/cluster_config.h"

namespace mentat {

struct ServerFlags {
  bool dev = false;
  std::string data_dir;
  std::string listen = "127.0.0.1:4646";
  std::string node_name;
  // The replicated control plane: this server's member name, its peer port, and every member
  // (none: a cluster of one).
  std::string name;
  std::string peer_listen;
  std::string initial_cluster;
  std::string cluster_name = "mentat";
  uint64_t raft_snapshot_count = 10000;
  uint64_t raft_max_snapshot_mb = 8192;  // RaftNodeOptions::max_snapshot_bytes
  std::string initial_cluster_state = "new";
  bool force_new_cluster = false;
  // TLS on the peer port with the cluster's CA (etcd's names).
  std::string peer_cert_file;
  std::string peer_key_file;
  std::string peer_trusted_ca_file;
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
  std::string tls_cert;
  std::string tls_key;
  bool insecure_http = false;
  std::string agent_ca_file;
  bool unsafe_no_fsync = false;
  int max_artifact_mb = 512;
  std::string artifact_grace = "1h";
  std::string default_policy;
  std::string node_heartbeat_timeout = "15s";
  std::string node_lost_after = "60s";
  ArtifactFlags agent_artifact_flags;

  // Resolved by ResolveServerFlags.
  std::vector<raft::ClusterMemberSpec> cluster;  // empty: a cluster of one, this server
  bool name_is_default = false;                  // `name` is the host's (no --name)
  NodeLifecycleOptions lifecycle;
  std::chrono::seconds artifact_grace_seconds{3600};
  ArtifactLimits agent_artifacts;
  std::string host;  // of --listen; "localhost" stays as given
  int port = 0;
  bool loopback = false;  // host is an address only this machine reaches
};

void AddServerFlags(CLI::App& app, ServerFlags& f);

// Checks the flags together and fills in the resolved fields (all but `loopback`);
// kInvalidArgument names the flag. Enough for --restore.
Status ResolveServerFlags(ServerFlags& f);
// The checks of how the server is to serve: what --dev implies (no auth, a permissive default
// policy) and the refusal to serve without auth, or tokens in the clear, on the network.
Status CheckServingFlags(ServerFlags& f);
// Says whether an agent runs in-process and resolves --default-policy, warning when namespaces
// without a policy are permissive.
void AnnounceServingMode(ServerFlags& f);

}  // namespace mentat
