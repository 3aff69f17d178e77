// The Raft log on disk: what each Ready asks to persist (raft_core.h, step 1), in the "raft"
// column family of the node's RocksDB (rocksdb_state_machine.h), beside the state the log's
// entries produce. Layout:
//   "hardstate"             -> the last hard state (term, vote, commit)
//   "snapshot"              -> the last snapshot's metadata and the caller's description of it
//   "e" + 8-byte BE index   -> the raw entry at that index
// One Save is one WriteBatch and, when the Ready says so, one WAL sync: the entries and the
// hard state of a Ready are durable before its messages go out.
#pragma once

#include <cstdint>
#include <optional>

#include "apis/error.h"
#include "store/raft/raft_core.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace mentat::raft {

class RocksRaftLog {
 public:
  // `db` and `family` outlive this object (the state machine owns them).
  RocksRaftLog(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family) : db_(db), cf_(family) {}

  // Everything saved, to restart a RaftCore from.
  Result<PersistedRaftState> Load();
  // A Ready's hard state, snapshot and entries: entries at and after the first new index
  // replace what was there (a new leader's log wins); a snapshot drops the entries it covers.
  // Synced (the WAL, with everything written before it) when `sync`. Entries that only extend
  // the log (the usual case) are written without a range deletion: a tombstone per Ready made
  // every memtable switch fragment thousands of them.
  Status Save(const RaftReady& rd, bool sync);
  // After RaftCore::Compact, the disk follows: `snapshot` is saved and the entries up to
  // `compact_to` (at most the snapshot's index) go. Not synced: losing it in a crash only keeps
  // more log.
  Status Compact(const RaftSnapshotInfo& snapshot, uint64_t compact_to);
  Status Compact(const RaftSnapshotInfo& snapshot) { return Compact(snapshot, snapshot.index); }
  // Replaces everything saved with `state` (--force-new-cluster), synced.
  Status Replace(const PersistedRaftState& state);
  // The index of the last entry saved (0 when none).
  Result<uint64_t> LastIndex();

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  // The last entry's index on disk, once read (LastIndex) and then kept by Save and Replace;
  // only the node's thread saves.
  std::optional<uint64_t> last_index_;
};

}  // namespace mentat::raft
