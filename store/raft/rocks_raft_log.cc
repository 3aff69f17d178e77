#include "store/raft/rocks_raft_log.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <memory>

namespace mentat::raft {
namespace {

constexpr char kHardState[] = "hardstate";
constexpr char kSnapshot[] = "snapshot";

std::string EntryKey(uint64_t index) {
  std::string k = "e";
  for (int shift = 56; shift >= 0; shift -= 8) k.push_back(static_cast<char>((index >> shift) & 0xff));
  return k;
}

uint64_t IndexOf(const rocksdb::Slice& key) {
  uint64_t v = 0;
  for (size_t i = 1; i < key.size() && i <= 8; ++i) v = (v << 8) | static_cast<uint8_t>(key[i]);
  return v;
}

// The first key after every entry key.
std::string EntriesEnd() { return "f"; }

std::unexpected<Error> RocksError(const std::string& what, const rocksdb::Status& s) {
  return Internal("raft log: " + what + ": " + s.ToString());
}

}  // namespace

Result<PersistedRaftState> RocksRaftLog::Load() {
  PersistedRaftState out;
  auto s = db_->Get(rocksdb::ReadOptions(), cf_, kHardState, &out.hard_state);
  if (!s.ok() && !s.IsNotFound()) return RocksError("reading the hard state", s);
  s = db_->Get(rocksdb::ReadOptions(), cf_, kSnapshot, &out.snapshot);
  if (!s.ok() && !s.IsNotFound()) return RocksError("reading the snapshot", s);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_));
  for (it->Seek(EntryKey(0)); it->Valid() && it->key().starts_with("e"); it->Next()) {
    out.entries.push_back(it->value().ToString());
  }
  if (!it->status().ok()) return RocksError("reading entries", it->status());
  return out;
}

Status RocksRaftLog::Save(const RaftReady& rd, bool sync) {
  rocksdb::WriteBatch batch;
  if (!rd.hard_state.empty()) batch.Put(cf_, kHardState, rd.hard_state);
  if (rd.snapshot) {
    batch.Put(cf_, kSnapshot, rd.snapshot->raw);
    batch.DeleteRange(cf_, EntryKey(0), EntryKey(rd.snapshot->index + 1));
  }
  if (!rd.entries.empty()) {
    if (!last_index_) {
      MT_ASSIGN_OR_RETURN(last_index_, LastIndex());
    }
    // Only a tail that the new entries do not overwrite one by one needs deleting.
    if (rd.entries.back().index < *last_index_) {
      batch.DeleteRange(cf_, EntryKey(rd.entries.back().index + 1), EntriesEnd());
    }
    for (const auto& e : rd.entries) batch.Put(cf_, EntryKey(e.index), e.raw);
  }
  if (batch.Count() == 0) return {};
  auto s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) {
    last_index_.reset();  // read again from disk next time
    return RocksError("writing", s);
  }
  if (!rd.entries.empty()) last_index_ = rd.entries.back().index;
  if (sync) {
    // The store runs with manual WAL flushes (group commit): flush and sync here.
    s = db_->FlushWAL(/*sync=*/true);
    if (!s.ok()) return RocksError("syncing", s);
  }
  return {};
}

Status RocksRaftLog::Compact(const RaftSnapshotInfo& snapshot, uint64_t compact_to) {
  rocksdb::WriteBatch batch;
  batch.Put(cf_, kSnapshot, snapshot.raw);
  batch.DeleteRange(cf_, EntryKey(0), EntryKey(std::min(compact_to, snapshot.index) + 1));
  auto s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return RocksError("compacting", s);
  return {};
}

Status RocksRaftLog::Replace(const PersistedRaftState& state) {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(cf_, EntryKey(0), EntriesEnd());
  batch.Put(cf_, kHardState, state.hard_state);
  batch.Put(cf_, kSnapshot, state.snapshot);
  auto s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (s.ok()) s = db_->FlushWAL(/*sync=*/true);
  last_index_.reset();
  if (!s.ok()) return RocksError("replacing the log", s);
  return {};
}

Result<uint64_t> RocksRaftLog::LastIndex() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_));
  it->SeekForPrev(EntriesEnd());
  if (!it->status().ok()) return RocksError("reading the last entry", it->status());
  if (!it->Valid() || !it->key().starts_with("e")) return uint64_t{0};
  return IndexOf(it->key());
}

}  // namespace mentat::raft
