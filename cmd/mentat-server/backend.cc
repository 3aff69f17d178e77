#include "cmd/mentat-server/backend.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <thread>

#include "store/local_store.h"
#include "store/raft/cluster_member.h"

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

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

class LocalBackend : public ServerBackend {
 public:
  LocalBackend(LocalStorePtr store, std::string name) : store_(std::move(store)), name_(std::move(name)) {}
  Store& store() override { return *store_; }
  Compactor& compactor() override { return store_->compactor(); }
  Snapshotter& snapshotter() override { return store_->snapshotter(); }
  LeaderGatePtr gate() override { return gate_; }
  Json ClusterStatus() override {
    return {{"leader", name_},
            {"term", 0},
            {"members", Json::array({{{"name", name_},
                                      {"peerURL", ""},
                                      {"role", "leader"},
                                      {"voter", true},
                                      {"applied", store_->CurrentRevision()},
                                      {"healthy", true}}})}};
  }
  Status ChangeCluster(const std::string&, const std::string&, const std::string&) override {
    return FailedPrecondition("this server is not a member of a replicated control plane (it was started "
                              "without --initial-cluster)");
  }
  void Close() override { store_->CloseWatchers(); }

 private:
  LocalStorePtr store_;
  std::string name_;
  LeaderGatePtr gate_ = std::make_shared<SingleNodeGate>();
};

// Open while this member leads.
class MemberGate : public LeaderGate {
 public:
  explicit MemberGate(raft::RaftNode* node) : node_(node) {}
  bool MayWrite() const override { return node_->IsLeader(); }

 private:
  raft::RaftNode* node_;
};

class ClusterBackend : public ServerBackend {
 public:
  explicit ClusterBackend(std::unique_ptr<raft::ClusterMember> member)
      : member_(std::move(member)), gate_(std::make_shared<MemberGate>(&member_->node())) {}
  ~ClusterBackend() override { member_->Stop(); }
  Store& store() override { return member_->store(); }
  Compactor& compactor() override { return member_->state(); }
  Snapshotter& snapshotter() override { return member_->state(); }
  LeaderGatePtr gate() override { return gate_; }
  Json ClusterStatus() override { return member_->Status(); }
  Status ChangeCluster(const std::string& op, const std::string& name, const std::string& peer) override {
    if (op == "add") return member_->AddMember(name, peer);
    if (op == "remove") return member_->RemoveMember(name);
    if (op == "transfer-leader") return member_->TransferLeader(name);
    return InvalidArgument("no cluster operation " + op);
  }
  void Close() override { member_->Stop(); }

 private:
  std::unique_ptr<raft::ClusterMember> member_;
  LeaderGatePtr gate_;
};

}  // namespace

Result<std::unique_ptr<ServerBackend>> OpenBackend(const ServerFlags& f, const StateMachineOptions& so,
                                                   std::chrono::seconds patience) {
  if (f.cluster.empty()) {
    MT_ASSIGN_OR_RETURN(LocalStorePtr store, WhenFree(so.dir, patience, [&] { return OpenLocalStore(so); }));
    auto backend = std::make_unique<LocalBackend>(std::move(store), f.name.empty() ? HostName() : f.name);
    return backend;
  }
  raft::ClusterMemberOptions mo;
  mo.name = f.name;
  mo.members = f.cluster;
  mo.peer_listen = f.peer_listen;
  mo.cluster = f.cluster_name;
  mo.state = so;
  mo.raft.snapshot_entries = f.raft_snapshot_count;
  mo.raft.catch_up_entries = f.raft_snapshot_count / 2;  // etcd: 5,000 of 100,000; ours half
  mo.raft.snapshot_dir = f.data_dir + "/raft-snapshots";
  mo.tls = {f.peer_cert_file, f.peer_key_file, f.peer_trusted_ca_file};
  mo.join_existing = f.initial_cluster_state == "existing";
  mo.force_new_cluster = f.force_new_cluster;
  MT_ASSIGN_OR_RETURN(auto member, WhenFree(so.dir, patience, [&] { return raft::ClusterMember::Start(mo); }));
  return std::make_unique<ClusterBackend>(std::move(member));
}

}  // namespace mentat
