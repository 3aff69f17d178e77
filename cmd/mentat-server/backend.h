// What the server serves from: its store alone (no --initial-cluster), or its member of a
// replicated control plane (--name, --peer-listen, --initial-cluster). Either way the API
// server and the controllers get one Store, the maintenance its Compactor and Snapshotter, and
// the controllers a LeaderGate: always open alone, open in a cluster while this member leads.
#pragma once

#include <functional>
#include <memory>

#include "apis/object.h"
#include "cmd/mentat-server/flags.h"
#include "controllers/leader_gate.h"
#include "store/state_machine.h"
#include "store/store.h"

namespace mentat {

class ServerBackend {
 public:
  virtual ~ServerBackend() = default;
  virtual Store& store() = 0;
  virtual Compactor& compactor() = 0;
  virtual Snapshotter& snapshotter() = 0;
  virtual LeaderGatePtr gate() = 0;
  // GET /v1/cluster (raft::ClusterMember::Status); alone, one member that leads.
  virtual Json ClusterStatus() = 0;
  // A membership change (ApiServerOptions::change_cluster); alone: kFailedPrecondition.
  virtual Status ChangeCluster(const std::string& op, const std::string& name, const std::string& peer) = 0;
  // Ends the watches and, in a cluster, leaves it (the member's node and peer port stop).
  virtual void Close() = 0;
};

// Opens the store `so` describes, alone or as `f`'s cluster member, waiting up to `patience`
// for another process (a server still stopping) to let go of it.
Result<std::unique_ptr<ServerBackend>> OpenBackend(const ServerFlags& f, const StateMachineOptions& so,
                                                   std::chrono::seconds patience);

}  // namespace mentat
