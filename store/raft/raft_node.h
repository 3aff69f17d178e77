// RaftNode: one member of the replicated store. It drives a RaftCore on a thread of its own by
// etcd's Ready contract: each Ready's entries and hard state are saved (RocksRaftLog, one sync),
// its messages handed to the transport, its committed entries applied to the node's state
// machine in log order (ApplyProposal: every node applies the same bytes at the same index),
// then the core advances.
//
// Any member takes proposals: a follower's go to the leader inside Raft (proposal forwarding),
// and the node that proposed one hears its result when it applies the entry itself. While no
// leader is known (an election), proposals wait for one. A proposal
// that is not applied within `proposal_timeout` (no quorum, a lost leader), or that is in flight
// when the leadership moves, completes with kUnavailable; it may still be applied later (as with
// etcd, the write's fate is then unknown to the caller, never reported as done when it was not).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "store/proposal.h"
#include "store/raft/raft_core.h"
#include "store/raft/rocks_raft_log.h"
#include "store/rocksdb_state_machine.h"

namespace mentat::raft {

// How messages reach the other members. Send must not block for long (it queues); messages may
// be lost, duplicated or reordered, as Raft allows.
// A snapshot travels as frames (each non-empty): the sender writes them through a FrameWriter
// (false: the connection failed), the receiver reads them through a FrameReader (nullopt: the
// sender ended the stream).
using FrameWriter = std::function<bool(std::string_view frame)>;
using FrameReader = std::function<Result<std::optional<std::string>>()>;

class RaftTransport {
 public:
  virtual ~RaftTransport() = default;
  virtual void Send(RaftMessage message) = 0;
  // Sends a snapshot to `to` on a stream of its own: `write` writes its frames; OK once the
  // receiver took them all (RaftNode::ReceiveSnapshot returned OK there). Blocks; called from
  // the node's snapshot thread, never its main one. Once `stop` is requested (the node stops),
  // it fails at once rather than wait out a peer that takes nothing.
  virtual Status SendSnapshot(uint64_t to, const std::function<Status(const FrameWriter&)>& write,
                              std::stop_token stop) {
    return FailedPrecondition("this transport cannot send snapshots");
  }
};

struct RaftNodeOptions {
  uint64_t id = 0;
  // Members of a new cluster, itself included: used only when the node's disk holds no log yet.
  std::vector<uint64_t> bootstrap_peers;
  std::chrono::milliseconds tick{100};
  int election_ticks = 10;  // an election after 1 s without a leader
  int heartbeat_ticks = 1;
  // For a node that is its configuration's only voter (a cluster of one): it campaigns as soon
  // as it applied the entries committed before it started, and so leads at once, rather than
  // after an election timeout (etcd advances its first election the same way). A node of a
  // larger cluster leaves it off: its election would only disturb a leader already there.
  bool campaign_at_start = false;
  // false (--unsafe-no-fsync, for tests): a Ready's entries are never synced.
  bool sync = true;
  std::chrono::milliseconds proposal_timeout{5000};
  std::chrono::milliseconds read_retry{300};
  // Messages from peers not yet taken by the node's thread: past this many bytes, Receive waits
  // (the peer's connection then stops being read, and TCP slows the sender down).
  size_t max_inbox_bytes = 64 << 20;
  // Called on the node's thread when the known leader or this node's role changes. It must not
  // block nor call into the node (it may signal a thread that does).
  std::function<void()> on_leader_change;
  // Log compaction (etcd's --snapshot-count): once this many entries were applied since the
  // last snapshot, the state at the applied index is recorded as one and the log before it is
  // dropped, all but the last `catch_up_entries` (for followers a little behind). A follower
  // that needs what was dropped is sent the leader's whole state instead (a state image on a
  // connection of its own, in pieces of `snapshot_chunk` bytes).
  uint64_t snapshot_entries = 10000;
  uint64_t catch_up_entries = 5000;
  size_t snapshot_chunk = 1 << 20;
  // Where snapshots received are staged before they are installed ("": none are taken).
  std::string snapshot_dir;
  // A snapshot received whose state image goes past this many bytes is refused (ReceiveSnapshot:
  // InvalidArgument naming the limit) and what was staged of it removed, so that a broken or
  // hostile peer cannot fill this member's disk. 8 GiB, etcd's suggested largest database
  // (--quota-backend-bytes): a control plane's state is far smaller.
  uint64_t max_snapshot_bytes = uint64_t{8} << 30;
  // Membership. A configuration change applied here (at an index not applied before) is
  // recorded as the members `members_after` returns for it and its log index
  // (RocksStateMachine::ApplyMembersAt); then, as after a snapshot installed (which carries the
  // members), `on_members_changed` runs. Both on the node's thread: they must not block nor
  // call into the node. Without `members_after`, a change only moves the applied index.
  std::function<std::string(const AppliedConfChange&, uint64_t index)> members_after;
  std::function<void()> on_members_changed;
};

// What this node did with snapshots since it started, for status and tests.
struct SnapshotCounts {
  uint64_t taken = 0;      // log compactions
  uint64_t sent = 0;       // state images a follower took
  uint64_t failed = 0;     // sends that failed
  uint64_t installed = 0;  // state images installed here
};

// The read barriers this node was asked for since it started, and the confirmations (heartbeat
// rounds of the leader) it asked of the core for them: barriers that come together share one.
struct ReadCounts {
  uint64_t barriers = 0;
  uint64_t rounds = 0;
};

// The outcome of a proposal as its own node applied it: the changes with their revisions.
using ProposalDone = std::function<void(Result<std::vector<Change>>)>;
// The outcome of a read barrier: OK once the node's state may be read.
using ReadDone = std::function<void(Status)>;

class RaftNode {
 public:
  // Starts the node over `state` (its log in the same database) and `transport`; both outlive
  // it.
  static Result<std::unique_ptr<RaftNode>> Start(const RaftNodeOptions& opts,
                                                 RocksStateMachine& state, RaftTransport& transport);
  ~RaftNode();  // Stop()s

  // Proposes `p` (its id is set here); `done` runs on the node's thread.
  void Propose(Proposal p, ProposalDone done);
  // Proposes one configuration change; `context` (a JSON object) travels with it. `done` runs
  // once this node applied it, or with kUnavailable after `proposal_timeout` (the library
  // takes one change at a time and drops a second one proposed meanwhile).
  void ProposeConfChange(ConfChangeType type, uint64_t node, Json context, std::function<void(Status)> done);
  // Asks the leader to hand the leadership to `to` (a voter that is up to date).
  void TransferLeader(uint64_t to);
  // This node, a follower of `lead`, which the caller knows is gone (its process refuses
  // connections), starts an election at once rather than after the election timeout
  // (RaftCore::CampaignNow). Nothing when `lead` no longer leads.
  void CampaignNow(uint64_t lead);
  // An ordinary campaign now (with a pre-vote), as the election timeout would start.
  void Campaign();
  // Calls `done` (on the node's thread) once this node has applied every entry that was
  // committed when it was called, as the leader confirmed with a quorum's heartbeats (etcd's
  // ReadIndex, ReadOnlySafe): what is read from the state then is linearizable, on a follower as
  // on the leader. One confirmation is asked at a time; barriers that come meanwhile share the
  // next (each costs the leader a heartbeat round). kUnavailable when none
  // comes within `proposal_timeout` (no leader, no quorum); a request the library dropped (no
  // leader known yet, leadership lost) is asked again every `read_retry`.
  void ReadBarrier(ReadDone done);
  // A message from a peer (the transport calls it, from any thread). Waits while the messages
  // not yet taken hold `max_inbox_bytes`, unless the node is stopping.
  void Receive(std::string message);
  // The peer's messages cannot be delivered (the transport says so).
  void ReportUnreachable(uint64_t peer);
  // A snapshot stream from the leader (the transport calls it, on a thread of its own): a head
  // naming it, the Raft message, then the state image, staged in `snapshot_dir`. The message then
  // goes to the core like any other; the image is installed when the core restores the
  // snapshot. InvalidArgument for a malformed stream, and for an image past
  // `max_snapshot_bytes` (refused as soon as it passes it; nothing of it stays on disk).
  Status ReceiveSnapshot(const FrameReader& next);
  SnapshotCounts Snapshots();
  ReadCounts Reads();

  uint64_t id() const { return opts_.id; }
  // The leader this node knows of (0: none) and whether it is the leader.
  // The last leader this node knew of (0: none yet), still while it knows none.
  uint64_t LastLeader();
  uint64_t Leader();
  bool IsLeader();
  // The library's status (term, commit, applied, progress) with "leader" added.
  Json StatusJson();
  // The last raw log lines the library wrote, for the server's log.
  std::string TakeLogs();
  void Stop();
  // Stops the node for good because of `why`, a sentence for whoever asks (this member was
  // removed from its cluster): as Stop, and from then on whatever is asked of it (proposals,
  // read barriers, configuration changes) is refused with kUnavailable and `why`.
  void Halt(std::string why);
  // Why the node stopped for good: it was halted, or it stopped itself because its log could not
  // be saved (disk full). "" while it runs, and after a plain Stop.
  std::string Halted();

 private:
  struct ConfChangeAsked {
    ConfChangeType type;
    uint64_t node;
    Json context;
    std::function<void(Status)> done;
  };
  RaftNode(const RaftNodeOptions& opts, RocksStateMachine& state, RaftTransport& transport)
      : opts_(opts), state_(state), log_(state.db(), state.raft_family()), transport_(transport) {}
  void Loop();
  // One pass on the node's thread: messages and proposals in, ticks due, Readys out.
  void Step(std::deque<std::string>& messages, std::deque<std::pair<Proposal, ProposalDone>>& proposals,
            std::vector<ReadDone> reads);
  Status HandleReady(RaftReady& rd);
  // The Ready's log could not be saved (`e`): the node stops for good (Halted says why).
  void StopUnsaved(const Error& e);
  void ApplyEntry(const RaftEntry& e);
  void ApplyConfChange(const RaftEntry& e);
  void AskConfChanges(std::vector<ConfChangeAsked> asked);
  // Proposes the changes waiting for a leader; those still waiting past their deadline fail.
  void ProposeWaitingConfChanges();
  // Snapshots (raft_node_snapshots.cc). On the node's thread: a snapshot message the core asked
  // to send is given the state now and queued for the snapshot thread, which sends it and
  // reports how it went; a snapshot the core restores is installed from its staged image; the
  // log is compacted once enough was applied.
  void QueueSnapshot(RaftMessage m);
  void SnapshotLoop();
  Status InstallSnapshot(const RaftSnapshotInfo& snapshot);
  void MaybeCompact();
  std::string StagedPath(const std::string& id) const;
  void ProposeWaiting();
  // campaign_at_start, once every entry committed at the start is applied (before that, the
  // library refuses to campaign with configuration changes not yet applied). True when it did.
  bool MaybeCampaign();
  void FailPendingOnLeaderChange();
  void ExpireProposals();
  // Read barriers (raft_node_reads.cc): asked of the core one confirmation at a time,
  // confirmed at an index, released once it is applied.
  void AskReads(std::vector<ReadDone> reads);
  void AskNextReads();
  void ConfirmReads(const std::vector<ReadState>& states);
  void ReleaseReads();
  void RetryOrExpireReads();
  void FailReads(const Status& why);
  // What is asked of a node that is stopping is refused with this (mu_ held).
  std::unexpected<Error> Refusal() const;

  RaftNodeOptions opts_;
  RocksStateMachine& state_;
  RocksRaftLog log_;
  RaftTransport& transport_;
  std::unique_ptr<RaftCore> core_;  // the node's thread only

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::string> inbox_;
  size_t inbox_bytes_ = 0;
  std::condition_variable inbox_space_;
  std::deque<std::pair<Proposal, ProposalDone>> proposals_;
  std::vector<ConfChangeAsked> conf_changes_;
  struct WaitingConfChange {
    ConfChangeAsked asked;
    std::string id;
    std::chrono::steady_clock::time_point deadline;
  };
  std::deque<WaitingConfChange> conf_waiting_;  // the node's thread only
  uint64_t transfer_to_ = 0;
  uint64_t campaign_now_ = 0;  // the gone leader whose follower campaigns now
  bool campaign_ = false;
  std::vector<ReadDone> reads_;
  std::vector<uint64_t> unreachable_;
  struct OutgoingSnapshot {
    uint64_t to;
    RocksStateMachine::PinnedState pinned;
    std::string message;
    std::string id;
  };
  std::deque<OutgoingSnapshot> outgoing_;                       // for the snapshot thread
  std::vector<std::pair<uint64_t, bool>> snapshot_reports_;  // peer, failed: for the core
  std::condition_variable snapshot_wake_;
  std::stop_source snapshot_stop_;  // requested by Stop: a send in flight is abandoned
  SnapshotCounts snapshot_counts_;
  ReadCounts read_counts_;
  bool stopping_ = false;
  std::string halted_;  // why the node stopped for good ("": it did not)
  uint64_t leader_ = 0;
  uint64_t last_leader_ = 0;  // the last leader known, kept while none is
  bool is_leader_ = false;
  Json status_ = Json::object();
  std::string logs_;

  // Proposals this node made, by id, until applied or expired (the node's thread only).
  struct Pending {
    ProposalDone done;
    std::chrono::steady_clock::time_point deadline;
  };
  std::map<std::string, Pending> pending_;
  // Proposals not yet taken by the core (no leader known), oldest first, tried on every pass.
  struct Waiting {
    std::string id;     // the proposal's
    std::string bytes;  // encoded once
    ProposalDone done;
    std::chrono::steady_clock::time_point deadline;
  };
  std::deque<Waiting> waiting_;
  uint64_t next_proposal_ = 0;
  // Read barriers (the node's thread only): those waiting to be asked, the one confirmation
  // asked of the core (by request context) until it is confirmed at an index, then confirmed
  // ones until this node applied that index.
  struct UnaskedRead {
    ReadDone done;
    std::chrono::steady_clock::time_point deadline;
  };
  std::deque<UnaskedRead> unasked_reads_;
  struct AskedRead {
    std::string ctx;
    std::vector<ReadDone> done;
    std::chrono::steady_clock::time_point deadline;  // its oldest barrier's
    std::chrono::steady_clock::time_point ask_again;
  };
  std::optional<AskedRead> asked_read_;
  struct ConfirmedRead {
    uint64_t index;
    std::vector<ReadDone> done;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<ConfirmedRead> confirmed_reads_;
  uint64_t next_read_ = 0;
  std::string nonce_;  // this start's, in proposal ids and read contexts
  uint64_t snapshot_index_ = 0;  // the last compaction's (the node's thread only)
  bool status_stale_ = true;     // status_ wants refreshing (the node's thread only)
  bool leading_ = false;         // is_leader_, as the node's thread reads it without mu_
  uint64_t next_snapshot_ = 0;
  bool campaign_pending_ = false;  // campaign_at_start not done yet (the node's thread only)
  std::thread thread_;
  std::thread snapshot_thread_;
};

}  // namespace mentat::raft
