#include "cmd/mentat-server/backend.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace mentat {
namespace {

// Runs `open` until no other process holds the store, up to `patience`: a server started right
// after another one on the same data directory was told to stop (a restart) waits for that one
// to let go, rather than failing while it closes its store.
template <class Open>
auto WhenFree(const std::string& dir, std::chrono::seconds patience, Open open) -> decltype(open()) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  bool said = false;
  while (true) {
    auto opened = open();
    if (opened || opened.error().code() != Code::kUnavailable ||
        std::chrono::steady_clock::now() >= deadline) {
      return opened;
    }
    if (!said) {
      spdlog::info("store {} is in use by another process (a server still stopping?); waiting up "
                   "to {} s for it", dir, patience.count());
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // pacing between attempts
  }
}

// Open while this member leads.
class MemberGate : public LeaderGate {
 public:
  explicit MemberGate(raft::RaftNode* node) : node_(node) {}
  bool MayWrite() const override { return node_->IsLeader(); }

 private:
  raft::RaftNode* node_;
};

}  // namespace

ServerBackend::ServerBackend(std::unique_ptr<raft::ClusterMember> member)
    : member_(std::move(member)), gate_(std::make_shared<MemberGate>(&member_->node())) {}

ServerBackend::~ServerBackend() { Close(); }

Status ServerBackend::ChangeCluster(const std::string& op, const std::string& name, const std::string& peer) {
  if (op == "add") return member_->AddMember(name, peer);
  if (op == "remove") return member_->RemoveMember(name);
  if (op == "transfer-leader") return member_->TransferLeader(name);
  return InvalidArgument("no cluster operation " + op);
}

Result<std::unique_ptr<ServerBackend>> OpenBackend(const ServerFlags& f, const StateMachineOptions& so,
                                                   std::chrono::seconds patience) {
  raft::ClusterMemberOptions mo;
  mo.name = f.name;
  mo.name_is_default = f.name_is_default;
  mo.members = f.cluster;  // empty: a cluster of one
  mo.peer_listen = f.peer_listen;
  mo.cluster = f.cluster_name;
  mo.state = so;
  mo.raft.snapshot_entries = f.raft_snapshot_count;
  mo.raft.catch_up_entries = f.raft_snapshot_count / 2;  // etcd: 5,000 of 100,000; ours half
  mo.raft.snapshot_dir = f.data_dir + "/raft-snapshots";
  mo.raft.max_snapshot_bytes = f.raft_max_snapshot_mb << 20;
  mo.raft.sync = so.sync;
  mo.tls = {f.peer_cert_file, f.peer_key_file, f.peer_trusted_ca_file};
  mo.join_existing = f.initial_cluster_state == "existing";
  mo.force_new_cluster = f.force_new_cluster;
  MT_ASSIGN_OR_RETURN(auto member, WhenFree(so.dir, patience, [&] { return raft::ClusterMember::Start(mo); }));
  return std::make_unique<ServerBackend>(std::move(member));
}

}  // namespace mentat
