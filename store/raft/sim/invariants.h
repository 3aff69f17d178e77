// Invariants: Raft's safety properties, checked as the simulation runs (after every step that
// changes a node) from what the nodes write and apply. The first violation is kept; the
// simulation stops there.
//   - Election safety: at most one leader per term.
//   - Log matching: entries with the same index and term hold the same bytes on every node, and
//     follow an entry of the same term (so, by induction, the logs up to them are the same).
//   - Leader completeness: a new leader's log holds every entry known committed.
//   - State machine safety: every node applies, at each index, the same entry, in index order,
//     and reaches the same state there (snapshots included).
//   - Durability: after a crash, every entry known committed is still on the durable disks of a
//     majority (a crash loses only what was not synced, and nothing acknowledged may be lost);
//     and the crashed node's durable log reaches as far as its log did when it last answered an
//     append (a leader counts that answer as a copy of every entry up to it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/raft/raft_core.h"
#include "store/raft/sim/sim_disk.h"

namespace mentat::raft::sim {

class Invariants {
 public:
  explicit Invariants(size_t voters) : voters_(voters) {}

  // `node` became leader of `term`; `log` is what it wrote.
  void OnLeader(uint64_t node, uint64_t term, const LogImage& log);
  // `node` wrote `entries`; `log` is its log after the write.
  void OnWritten(uint64_t node, const std::vector<RaftEntry>& entries, const LogImage& log);
  // `node` applied the committed entry `e`, reaching state `state` (a fingerprint).
  void OnApplied(uint64_t node, const RaftEntry& e, uint64_t state);
  // `node`'s state became the snapshot's at `index`.
  void OnRestored(uint64_t node, uint64_t index, uint64_t state);
  // `node` started again over its disk: it applies again from after `applied`.
  void OnRestart(uint64_t node, uint64_t applied) { applied_[node] = applied; }
  // The durable logs of all nodes, after a crash.
  void CheckDurable(const std::map<uint64_t, const LogImage*>& durable);
  // After `node` crashed: it had answered an append with its log at `acknowledged`.
  void CheckAcknowledged(uint64_t node, uint64_t acknowledged, const LogImage& durable);

  // Anything else the simulation finds wrong (an error from the core where none may be).
  void Fail(std::string what);
  bool ok() const { return violation_.empty(); }
  const std::string& violation() const { return violation_; }
  uint64_t committed() const { return committed_.empty() ? 0 : committed_.rbegin()->first; }
  uint64_t elections() const { return leader_of_term_.size(); }

 private:
  size_t voters_;
  std::map<uint64_t, uint64_t> leader_of_term_;
  struct Written {
    uint64_t hash;       // of the raw entry
    uint64_t prev_term;  // of the entry before it
    uint64_t node;       // the first node seen with it
  };
  std::map<std::pair<uint64_t, uint64_t>, Written> written_;  // by (index, term)
  struct Committed {
    std::string raw;
    uint64_t state;  // the state machine's after it
    uint64_t node;   // the first node seen applying it
  };
  std::map<uint64_t, Committed> committed_;  // by index
  std::map<uint64_t, uint64_t> state_at_;    // fingerprints by index, snapshots included
  std::map<uint64_t, uint64_t> applied_;     // each node's last applied index
  std::string violation_;
};

}  // namespace mentat::raft::sim
