// ClusterMember: this server as one member of a replicated control plane. It owns the member's
// RocksDB (state and Raft log), its peer port (PeerTransport), its RaftNode, and the
// ReplicatedStore the API server and controllers use. A thread of its own logs the library's
// lines and each change of leadership into the server's log.
//
// A member removed from the cluster learns it as etcd's does (ErrMemberRemoved): when it applies
// its own removal, or when a member that applied it refuses its connection as removed (the
// members record keeps removed ones, with the index of their removal, as etcd keeps removed
// ids). It then stops taking part for good: its node is halted (what is asked of it is refused
// with the reason, and it campaigns no more), its peer port closes, and Health says so.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/raft/cluster_config.h"
#include "store/raft/peer_transport.h"
#include "store/raft/raft_node.h"
#include "store/raft/replicated_store.h"

namespace mentat::raft {

struct ClusterMemberOptions {
  std::string name;  // this member's, among `members`
  // `name` is the host's (no --name given): a database that recorded another member's name goes
  // on as that member. A name given that differs from the recorded one is refused.
  bool name_is_default = false;
  // The initial cluster, this one included (--initial-cluster). Empty: a cluster of one, this
  // member alone, whose peer address is `peer_listen`, else the one its log recorded, else none.
  std::vector<ClusterMemberSpec> members;
  // host:port to listen on for peers; "": with `members`, this member's address there; alone,
  // as above ("" again: no peer port, so no other member can join until it has one).
  std::string peer_listen;
  std::string cluster = "mentat";           // peers from another cluster are refused
  StateMachineOptions state;                // the member's RocksDB
  RaftNodeOptions raft;                     // id and bootstrap_peers come from `members`
  PeerTlsFiles tls;                         // all empty: plain TCP on the peer port
  // --initial-cluster-state existing: this member joins a cluster that runs already (after
  // `mt cluster add`), so it makes no new one; the others reach it and send it the log.
  bool join_existing = false;
  // --force-new-cluster (force_new_cluster.h): this member's data becomes a cluster of one.
  bool force_new_cluster = false;
};

class ClusterMember {
 public:
  // Opens the member's store (kUnavailable when another process holds it), listens on its
  // peer port, and starts its Raft node: a new cluster's members bootstrap from `members`; a
  // member with a log on disk goes on from it. A store without a log (written by a server
  // before every server was a member, or restored from a snapshot) becomes a new cluster with
  // its objects, revisions and watch history: the log starts at index 1 and the state
  // machine, at applied index 0, applies it from there on top of its revisions. A member that
  // is its configuration's only voter leads at once (RaftNodeOptions::campaign_at_start).
  // Alone (no `members`), a cluster of one given a new --peer-listen records it through its log
  // before Start returns; a member of a larger cluster cannot move so (kFailedPrecondition).
  static Result<std::unique_ptr<ClusterMember>> Start(ClusterMemberOptions opts);
  ~ClusterMember();  // Stop()s

  Store& store() { return *store_; }
  RocksStateMachine& state() { return *state_; }
  RaftNode& node() { return *node_; }
  const std::string& name() const { return opts_.name; }
  bool IsLeader() { return node_->IsLeader(); }
  // Whether this member is its cluster's only voter, as last applied here.
  bool SoleVoter();

  // GET /v1/cluster: {"leader": NAME ("" while none is known), "term", "members": [{"name",
  // "peerURL", "role": leader|follower, "voter", "applied", "healthy"}]}. "applied" is exact for
  // this member; for the others it is what the leader knows (the index their log matches), so
  // a follower reports null for them. "healthy": for this member, Health(), with its "reason"
  // when false; for the others, whether this member reaches that one's peer port.
  Json Status();
  // OK while this member takes part in its cluster; kUnavailable saying why once it stopped for
  // good: its Raft log could not be saved (RaftNode::Halted; a restart is needed), or it was
  // removed from the cluster ("role": "removed" in Status). /healthz and /readyz answer 503 with
  // it.
  mentat::Status Health();

  // Membership changes, one at a time, each answered once this member applied it.
  // AddMember: `name` at `peer_address` joins as a learner, which the leader makes a voter once
  // its log caught up (Status shows when). kAlreadyExists for a name or address taken;
  // kInvalidArgument for a bad one, or one off this machine without peer TLS;
  // kFailedPrecondition when this member has no peer port (it must be restarted with one).
  mentat::Status AddMember(const std::string& name, const std::string& peer_address);
  // kNotFound for no such member; kFailedPrecondition for the leader (transfer the leadership
  // first) and for the last voter.
  mentat::Status RemoveMember(const std::string& name);
  // Hands the leadership to the voter `name`; kUnavailable when it has not taken it in time.
  mentat::Status TransferLeader(const std::string& name);

  // Stops the leadership thread, the node (what waits on it fails with kUnavailable), the peer
  // port, and closes the watches. Idempotent.
  void Stop();

 private:
  explicit ClusterMember(ClusterMemberOptions opts) : opts_(std::move(opts)) {}
  // The member's own thread: the library's log lines and leadership changes into the log; the
  // peer port follows the members; a leader makes caught-up learners voters.
  void Loop();
  struct Known {
    uint64_t id = 0;
    std::string name;
    std::string peer_address;
    bool learner = false;
    uint64_t removed_at = 0;  // a removed member's: the log index of its removal
  };
  // The members as last applied (the state's record; before any, --initial-cluster), and those
  // removed from the cluster into `removed`.
  std::vector<Known> LoadMembers(bool* recorded = nullptr, std::vector<Known>* removed = nullptr);
  // Before the node starts: this member's name (checked against, or taken from, the one its
  // database recorded) and, alone, its one-member `members` at its peer address. Sets
  // `move_to_` when a cluster of one is to record a new peer address.
  mentat::Status ResolveSelf();
  // Alone, after the node started: records `move_to_` as this member's peer address through
  // the log (a configuration change adding the voter it is already, which changes no vote).
  mentat::Status MovePeerAddress();
  // On the node's thread: the record after `cc`, applied at `index`
  // (RaftNodeOptions::members_after).
  std::string MembersAfter(const AppliedConfChange& cc, uint64_t index);
  // The peer port's peers follow the members, and refuses the removed ones; this member removed
  // leaves the cluster.
  void FollowMembers();
  // A peer refused this member as removed at `index` (the transport's thread): the loop decides.
  void ToldRemoved(uint64_t by, uint64_t index);
  // On the member's thread: whether that is so; it leaves the cluster if it is.
  void HeardRemoved(uint64_t by, uint64_t index);
  // On the member's thread: this member was removed (`how` it learned it): it says so and its
  // node is halted for good (ClosePeerPortOnceHalted then closes its peer port).
  void LeaveCluster(const std::string& how);
  // Status()'s entry for this member: how far it applied, its health, and whether it was removed.
  void AddOwnStatus(Json& entry);
  void PromoteCaughtUpLearners();
  // The transport found `peer`'s process gone (its port refuses connections). When it was the
  // leader, the other voters campaign in turn (by id, kSuccessorStep apart; the first as a
  // leadership transfer's target, the others with a pre-vote) rather than after the election
  // timeout: failover in about a round trip after the refusal.
  void PeerGone(uint64_t peer);
  // On the member's thread: this member's turn came (PeerGone).
  void CampaignIfDue();
  // On the member's thread, once the node stopped for good: the peer port closes, so that the
  // others see this member gone at once.
  void ClosePeerPortOnceHalted();
  static constexpr std::chrono::milliseconds kSuccessorStep{200};
  mentat::Status WaitFor(const std::function<void(std::function<void(mentat::Status)>)>& start, const std::string& what);
  // The members as last applied here (LoadMembers).
  std::vector<Known> Members();

  ClusterMemberOptions opts_;
  uint64_t id_ = 0;
  std::optional<std::string> move_to_;  // ResolveSelf's, for MovePeerAddress
  std::unique_ptr<RocksStateMachine> state_;
  std::unique_ptr<PeerTransport> transport_;
  std::unique_ptr<RaftNode> node_;
  std::unique_ptr<ReplicatedStore> store_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool leadership_changed_ = false;
  bool members_changed_ = true;
  std::map<uint64_t, std::string> peers_;      // what the peer port has: the loop's only
  bool was_member_ = false;                    // the loop's only
  bool peer_port_closed_ = false;              // the loop's only
  std::atomic<bool> removed_{false};           // this member was removed from the cluster
  uint64_t told_removed_by_ = 0;               // mu_: ToldRemoved's, until the loop takes it
  uint64_t told_removed_at_ = 0;               // mu_
  bool promoting_ = false;                     // mu_
  uint64_t gone_leader_ = 0;                   // mu_: PeerGone's, until this member campaigns
  bool first_in_line_ = false;                 // mu_
  bool campaign_scheduled_ = false;            // mu_
  std::chrono::steady_clock::time_point campaign_at_;  // mu_
  std::mutex change_mu_;                       // one membership change at a time
  std::thread thread_;
};

}  // namespace mentat::raft
