// What the server serves from: its member of a replicated control plane. Every server is one:
// with --initial-cluster, of the cluster it names; without, of a cluster of one (itself, named
// --name or after the host), which `mt cluster add` can grow once it has a peer port
// (--peer-listen). The API server and the controllers get its Store, the maintenance its
// Compactor and Snapshotter, and the controllers a LeaderGate, open while this member leads.
#pragma once

#include <chrono>
#include <memory>

#include "apis/object.h"
#include "cmd/mentat-server/flags.h"
#include "controllers/leader_gate.h"
#include "store/raft/cluster_member.h"
#include "store/state_machine.h"
#include "store/store.h"

namespace mentat {

class ServerBackend {
 public:
  explicit ServerBackend(std::unique_ptr<raft::ClusterMember> member);
  ~ServerBackend();  // Close()s

  Store& store() { return member_->store(); }
  Compactor& compactor() { return member_->state(); }
  Snapshotter& snapshotter() { return member_->state(); }
  LeaderGatePtr gate() { return gate_; }
  raft::ClusterMember& member() { return *member_; }
  // GET /v1/cluster (raft::ClusterMember::Status).
  Json ClusterStatus() { return member_->Status(); }
  // A membership change (ApiServerOptions::change_cluster): add, remove or transfer-leader.
  Status ChangeCluster(const std::string& op, const std::string& name, const std::string& peer);
  // Ends the watches and leaves the cluster (the member's node and peer port stop).
  void Close() { member_->Stop(); }

 private:
  std::unique_ptr<raft::ClusterMember> member_;
  LeaderGatePtr gate_;
};

// Opens the store `so` describes as `f`'s cluster member, waiting up to `patience` for another
// process (a server still stopping) to let go of it.
Result<std::unique_ptr<ServerBackend>> OpenBackend(const ServerFlags& f, const StateMachineOptions& so,
                                                   std::chrono::seconds patience);

}  // namespace mentat
