#include "store/raft/force_new_cluster.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "store/raft/raft_node.h"

namespace mentat::raft {
namespace {

// Where a node alone sends its messages: nowhere.
class Nowhere : public RaftTransport {
 public:
  void Send(RaftMessage) override {}
};

// Applies what the member's log holds as committed; returns the last term it saw.
Result<uint64_t> ApplyCommitted(RocksStateMachine& state, uint64_t self) {
  Nowhere nowhere;
  RaftNodeOptions o;
  o.id = self;
  o.election_ticks = 1 << 20;  // never campaigns: it only replays
  MT_ASSIGN_OR_RETURN(auto node, RaftNode::Start(o, state, nowhere));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  uint64_t term = 0;
  for (;;) {
    Json status = node->StatusJson();
    term = status.value("term", uint64_t{0});
    const auto commit = status.value("commit", uint64_t{0});
    if (status.contains("commit") && static_cast<uint64_t>(state.AppliedIndex()) >= commit) break;
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("--force-new-cluster: the member's committed entries were not applied within 60 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  node->Stop();
  return term;
}

}  // namespace

Result<int64_t> ForceNewCluster(RocksStateMachine& state, const ClusterMemberSpec& self) {
  MT_ASSIGN_OR_RETURN(uint64_t term, ApplyCommitted(state, self.id));
  const int64_t applied = state.AppliedIndex();
  MT_ASSIGN_OR_RETURN(PersistedRaftState fresh,
                      RaftCore::NewClusterState(self.id, static_cast<uint64_t>(applied), term + 1));
  RocksRaftLog log(state.db(), state.raft_family());
  MT_RETURN_IF_ERROR(log.Replace(fresh));
  Json members = Json::array({{{"name", self.name}, {"peerURL", self.peer_address}, {"learner", false}}});
  MT_RETURN_IF_ERROR(state.ReplaceMembers(members.dump()));
  spdlog::warn("--force-new-cluster: member {} is now a cluster of one, going on from index {} at term {}; "
               "the other members must not come back with their old data",
               self.name, applied, term + 1);
  return applied;
}

}  // namespace mentat::raft
