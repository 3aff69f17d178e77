// RaftCore: one node of etcd's Raft library (go.etcd.io/etcd/raft's RawNode, through the Go
// shim in shim/), in C++ types. It is the algorithm and nothing else: the caller ticks it,
// steps it with peers' messages, proposes, and drives each Ready by etcd's contract:
//
//   1. persist Ready::hard_state, Ready::snapshot and Ready::entries (synced when must_sync or
//      when there is a snapshot: the library's must_sync looks at entries and votes only, yet
//      the Ready's messages acknowledge the snapshot),
//   2. send Ready::messages (after step 1: a vote or an append acknowledged must be durable;
//      a leader may send its appends and heartbeats before step 1, see TakeSendableBeforeSync),
//   3. apply Ready::committed in order (entries of type kConfChange through ApplyConfChange),
//   4. call Advance().
//
// A node restarts from what step 1 persisted (PersistedRaftState). Calls must not overlap:
// one thread drives a RaftCore (the shim's RawNode is not thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"

namespace mentat::raft {

struct RaftConfig {
  uint64_t id = 0;  // this node's Raft id, never 0
  int election_tick = 10;
  int heartbeat_tick = 1;
  uint64_t max_size_per_msg = 1 << 20;        // bytes of entries in one append message
  int max_inflight_msgs = 256;                // appends in flight to one follower
  uint64_t max_uncommitted_size = 64 << 20;   // proposals past this are dropped
  uint64_t applied = 0;                       // the last index the caller applied (restart)
  bool pre_vote = true;                       // as etcd runs it
  bool check_quorum = true;
};

// What step 1 of each Ready persisted, to restart from: the last hard state, the last snapshot
// (empty: none) and the raw entries after it, in index order.
struct PersistedRaftState {
  std::string hard_state;
  std::string snapshot;
  std::vector<std::string> entries;
};

enum class EntryType : uint32_t { kNormal = 0, kConfChange = 1, kConfChangeV2 = 2 };

struct RaftEntry {
  uint64_t index = 0;
  uint64_t term = 0;
  EntryType type = EntryType::kNormal;
  std::string data;  // what was proposed (empty: the entry a new leader appends)
  std::string raw;   // the whole entry, as PersistedRaftState::entries wants it back
};

// raftpb.MessageType values the caller routes differently.
inline constexpr uint32_t kMsgApp = 3;
inline constexpr uint32_t kMsgSnap = 7;
inline constexpr uint32_t kMsgHeartbeat = 8;

struct RaftMessage {
  uint64_t to = 0;
  uint32_t type = 0;
  std::string bytes;  // opaque: Step() on the peer takes it
};

enum class RaftRole : uint32_t { kFollower = 0, kCandidate = 1, kLeader = 2, kPreCandidate = 3 };

struct ReadState {
  uint64_t index = 0;       // reads with this context may be served once this index is applied
  std::string request_ctx;  // as given to ReadIndex
};

struct RaftSnapshotInfo {
  std::string raw;  // to persist (PersistedRaftState::snapshot)
  uint64_t index = 0;
  uint64_t term = 0;
  std::string data;  // the caller's description, as given to Compact on the sender
};

struct RaftReady {
  std::optional<std::pair<uint64_t, RaftRole>> soft_state;  // leader id and own role, if changed
  std::string hard_state;                                   // empty: unchanged
  uint64_t commit = 0;  // hard_state's commit index (0: unchanged)
  std::vector<ReadState> read_states;
  std::vector<RaftEntry> entries;  // to persist
  std::optional<RaftSnapshotInfo> snapshot;
  std::vector<RaftEntry> committed;  // to apply
  std::vector<RaftMessage> messages;
  bool must_sync = false;
};

// A leader's appends and heartbeats, taken out of `rd` to be sent before step 1 (the Raft
// thesis, 10.2.1: the leader writes its log in parallel with its followers). They acknowledge
// nothing, and the leader's own entries still count towards a commit only once durable: the
// library counts them at append, but it commits an entry only when another voter's answer for
// it is stepped (or alone, with one voter, whose Ready then has no appends to send), and the
// caller steps nothing before it finished step 1 of this Ready. Empty unless `leader` (the role
// after this Ready's soft state), and when the library committed entries of this very Ready (one
// voter: its appends to learners would carry a commit index not yet durable anywhere); everything
// else in `rd.messages` waits for step 1.
std::vector<RaftMessage> TakeSendableBeforeSync(RaftReady& rd, bool leader);

enum class ConfChangeType : uint32_t { kAddVoter = 0, kRemove = 1, kAddLearner = 3 };

// A configuration change as applied, and the configuration it made.
struct AppliedConfChange {
  ConfChangeType type = ConfChangeType::kAddVoter;
  uint64_t node = 0;
  std::string context;
  std::vector<uint64_t> voters;
  std::vector<uint64_t> learners;
};

class RaftCore {
 public:
  // A node from its persisted state; `bootstrap_peers` (with itself) only for the very first
  // start of a new cluster, on an empty state.
  static Result<std::unique_ptr<RaftCore>> Start(const RaftConfig& config,
                                                 const PersistedRaftState& state,
                                                 const std::vector<uint64_t>& bootstrap_peers = {});
  ~RaftCore();
  RaftCore(const RaftCore&) = delete;
  RaftCore& operator=(const RaftCore&) = delete;

  uint64_t id() const { return id_; }
  void Tick();
  Status Campaign();
  // As a follower of `lead` (or of none in its term), which the caller knows is gone: an
  // election now, as a leadership transfer's target starts one (no pre-vote, voters set the
  // lease aside). Nothing when the node follows another leader.
  Status CampaignNow(uint64_t lead);
  // kUnavailable when the node cannot take a proposal now (no leader known, a leadership
  // transfer, too much uncommitted): the caller retries elsewhere or later.
  Status Propose(std::string_view data);
  Status ProposeConfChange(ConfChangeType type, uint64_t node, std::string_view context);
  // For a committed entry of type kConfChange.
  Result<AppliedConfChange> ApplyConfChange(std::string_view data);
  // A peer's message; messages from unknown peers or of local types are ignored.
  Status Step(std::string_view message);
  void ReadIndex(std::string_view request_ctx);
  void TransferLeader(uint64_t to);
  void ReportUnreachable(uint64_t peer);
  void ReportSnapshot(uint64_t peer, bool failed);

  // The next Ready, if any; none is given out again until Advance().
  std::optional<RaftReady> Ready();
  Status Advance();
  // The caller's state at `index` (applied) is saved as a snapshot that `data` describes; the
  // in-memory log up to `compact_to` (at most `index`) is dropped, the entries after it kept for
  // followers a little behind. A follower that needs older entries gets a kMsgSnap message
  // (rewrite it with SnapshotMessage). Returns the snapshot to persist (its `raw`);
  // InvalidArgument for an index at or below the last snapshot's, past the applied one, or
  // below `compact_to`.
  Result<RaftSnapshotInfo> Compact(uint64_t index, uint64_t compact_to, std::string_view data);
  Result<RaftSnapshotInfo> Compact(uint64_t index, std::string_view data) {
    return Compact(index, index, data);
  }
  // A kMsgSnap message from Ready, rewritten to describe the caller's state now: at applied
  // `index`, with the configuration applied so far and `data` (etcd's merged snapshot). The
  // caller sends that state with the message; the follower's progress moves on from `index`.
  Result<std::string> SnapshotMessage(std::string_view message, uint64_t index, std::string_view data);

  // The persisted state (PersistedRaftState's snapshot and hard_state) of a new cluster of one,
  // `id`, going on from a member's state machine at `index`, at `term` (--force-new-cluster).
  static Result<PersistedRaftState> NewClusterState(uint64_t id, uint64_t index, uint64_t term);

  // Runs `task` on a thread the Go runtime owns and returns when it returns: a thread that
  // drives a RaftCore runs its loop this way, so that its calls into the library are cheap.
  static void RunOnGoThread(const std::function<void()>& task);

  // The library's status: id, term, vote, commit, lead, raftState, applied, progress.
  Json StatusJson() const;
  // The library's log lines since the last call ("info became leader at term 2\n"...).
  std::string TakeLogs();

 private:
  explicit RaftCore(uint64_t handle, uint64_t id) : handle_(handle), id_(id) {}
  Status Check(int code, const char* what) const;

  uint64_t handle_;
  uint64_t id_;
};

}  // namespace mentat::raft
