// SimDisk: one simulated node's Raft log on disk, in memory. Real fault injection (losing what a
// RocksDB WAL had not synced) for thousands of seeds is not possible with the RocksDB package, so
// the disk is modelled instead, with the semantics RocksRaftLog relies on: each Save is one atomic
// batch; a synced Save makes it and every earlier batch durable; a crash keeps the durable
// batches plus some prefix (possibly empty) of the unsynced ones, in order, as a WAL does.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/raft/raft_core.h"
#include "store/raft/sim/sim_random.h"

namespace mentat::raft::sim {

// A log as one copy of the disk holds it.
struct LogImage {
  std::string hard_state;
  std::optional<RaftSnapshotInfo> snapshot;  // with its term and the state machine's bytes
  std::map<uint64_t, RaftEntry> entries;     // after the snapshot, by index

  // The term of the entry at `index` (the snapshot's at its index), or nullopt if not held.
  std::optional<uint64_t> TermAt(uint64_t index) const;
  // Whether this log holds the entry `raw` at `index`, itself or under its snapshot.
  bool Holds(uint64_t index, const std::string& raw) const;
  PersistedRaftState ToPersisted() const;
  // The index of the last entry held, the snapshot's when it holds none after it.
  uint64_t LastIndex() const;
};

// What one write puts on the disk: a Ready's step 1, or a compaction.
struct DiskBatch {
  std::string hard_state;                    // empty: unchanged
  std::optional<RaftSnapshotInfo> snapshot;  // replaces the last one; drops entries it covers
  std::vector<RaftEntry> entries;            // replace the log from the first one's index on
  void ApplyTo(LogImage& log) const;
};

class SimDisk {
 public:
  void Save(DiskBatch batch, bool sync);
  // Everything unsynced becomes durable (the OS wrote its pages back on its own).
  void Flush();
  // The process dies: some prefix of the unsynced batches survives, drawn from `rng`.
  void Crash(SimRandom& rng);

  // What the running node wrote (synced or not) and what survives a crash for sure.
  const LogImage& written() const { return written_; }
  const LogImage& durable() const { return durable_; }
  size_t unsynced() const { return unsynced_.size(); }

 private:
  LogImage durable_;
  LogImage written_;
  std::vector<DiskBatch> unsynced_;
};

}  // namespace mentat::raft::sim
