// SimNode: one simulated member. A RaftCore driven on the simulation's single thread by the same
// Ready contract as RaftNode in production (raft_core.h): persist the hard state, snapshot and
// entries (synced when must_sync, and when a snapshot came: see Contract::kMustSyncOnly), then
// send the messages, then apply the committed entries, then Advance. Its disk (SimDisk) outlives
// crashes; everything else, the core, the state machine and the requests it was serving, dies with
// the process and is rebuilt from the disk on restart.
//
// Clients reach a node directly. A write is proposed here (a follower's proposal goes to the
// leader inside Raft) and answered when this node applies it; a read asks ReadIndex and is
// answered from this node's state once it applied the index the leader confirmed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/raft/raft_core.h"
#include "store/raft/sim/invariants.h"
#include "store/raft/sim/kv_state_machine.h"
#include "store/raft/sim/sim_disk.h"
#include "store/raft/sim/sim_network.h"

namespace mentat::raft::sim {

// How the node keeps etcd's contract; anything but kProduction is a deliberate bug, to show that
// the simulation catches it.
enum class Contract {
  kProduction,
  // Each Ready's messages go out before its writes are durable (nothing is ever synced): a vote
  // or an acknowledged entry can be lost in a crash.
  kAckBeforeSync,
  // Reads are answered from the node's state at once, without ReadIndex: stale on a follower or
  // a deposed leader.
  kReadWithoutReadIndex,
  // The state machine applies a duplicated entry twice.
  kNoDeduplication,
  // A Ready is synced exactly when Ready::must_sync says, as raft_core.h words the contract and
  // RocksRaftLog::Save(rd, rd.must_sync) does. etcd's must_sync ignores the snapshot (etcd's
  // server syncs snapshots on its own), so a received snapshot is saved unsynced while the
  // answer acknowledging it goes out; a crash then loses what the leader counts as replicated,
  // and the node panics on the leader's next heartbeat ("tocommit(30) is out of range
  // [lastIndex(29)]"). kProduction syncs a Ready that carries a snapshot as well.
  kMustSyncOnly,
};

// raftpb.MessageType of a follower's answer to an append.
inline constexpr uint32_t kMsgAppResp = 4;

// A client's answer: which of its requests, and what it returned.
struct ClientReply {
  int client = 0;
  uint64_t request = 0;
  KvOutput output;
};

struct SimNodeOptions {
  uint64_t id = 0;
  std::vector<uint64_t> peers;  // all voters, itself included
  Contract contract = Contract::kProduction;
  uint64_t compact_every = 0;  // applied entries between snapshots; 0: never compacts
  int read_retry_ticks = 3;    // asks ReadIndex again while unconfirmed (dropped without leader)
};

class SimNode {
 public:
  SimNode(SimNodeOptions options, SimNetwork& network, Invariants& invariants, const uint64_t& now,
          std::function<void(const ClientReply&)> reply,
          std::function<void(const std::string&)> trace)
      : opts_(std::move(options)),
        network_(network),
        invariants_(invariants),
        now_(now),
        reply_(std::move(reply)),
        trace_(std::move(trace)) {}

  // Starts the core over the durable disk (bootstrapping the cluster when the disk is empty).
  Status Start();
  // The process dies: the disk keeps what it must (SimDisk::Crash), the rest is gone.
  void Crash(SimRandom& rng);
  bool up() const { return core_ != nullptr; }
  uint64_t id() const { return opts_.id; }
  bool is_leader() const { return up() && role_ == RaftRole::kLeader; }
  SimDisk& disk() { return disk_; }
  uint64_t applied() const { return applied_; }
  uint64_t state_fingerprint() const { return kv_.Fingerprint(); }
  // The last index of its log when it last answered an append (MsgAppResp), since it started.
  uint64_t acknowledged() const { return acknowledged_; }

  // A client's write; false when the node cannot take it now (it knows no leader): it was not
  // proposed and never will be.
  bool Write(const KvCommand& command, uint64_t request);
  void Read(int client, uint64_t request, const std::string& key);
  void Tick();
  void Receive(const RaftMessage& message);
  void ReportSnapshot(uint64_t to, bool failed);
  // Handles every Ready the core has (call after anything above).
  void Drain();
  std::string TakeLogs() { return up() ? core_->TakeLogs() : ""; }
  Json StatusJson() const { return up() ? core_->StatusJson() : Json::object(); }

 private:
  Status HandleReady(RaftReady& rd);
  // Steps 2 to 4 of a Ready persisted (and synced when it had to be).
  Status SendApplyAdvance(RaftReady& rd);
  // A leader's Ready whose appends went out before its write was synced: syncs it and does the
  // rest (the next Ready waits for Drain). Every entry point calls it first: production finishes
  // a Ready before it steps anything else.
  void FinishUnsyncedReady();
  void Apply(const RaftEntry& e);
  void Install(const RaftSnapshotInfo& snapshot);
  void ConfirmReads(const std::vector<ReadState>& states);
  void ReleaseReads();
  void MaybeCompact();
  void Fail(const std::string& what);

  SimNodeOptions opts_;
  SimNetwork& network_;
  Invariants& invariants_;
  const uint64_t& now_;
  std::function<void(const ClientReply&)> reply_;
  std::function<void(const std::string&)> trace_;
  SimDisk disk_;  // survives crashes

  // The process: gone in a crash.
  std::unique_ptr<RaftCore> core_;
  RaftRole role_ = RaftRole::kFollower;
  KvStateMachine kv_;
  uint64_t applied_ = 0;
  uint64_t acknowledged_ = 0;
  struct UnsyncedReady {
    RaftReady ready;
    bool sync;  // whether the write is to be synced
  };
  std::optional<UnsyncedReady> unsynced_ready_;
  std::map<std::pair<int, uint64_t>, uint64_t> writes_;  // (client, seq) -> request
  struct PendingRead {
    int client;
    uint64_t request;
    std::string key;
    bool confirmed = false;
    uint64_t index = 0;  // once confirmed: served when applied reaches it
    int ticks = 0;       // since last asked
  };
  std::map<std::string, PendingRead> reads_;  // by request context
  uint64_t next_read_ = 0;                    // never reset: contexts stay unique across restarts
};

}  // namespace mentat::raft::sim
