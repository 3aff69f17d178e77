// The RocksDB backend of Store. Layout (column families):
//   objects: "<Kind>/<namespace>/<name>" -> object JSON
//   log:     8-byte big-endian revision  -> {"t", "events":[the one event at that revision]}
//            (the change log watch resumes from; stores written before every object write had
//            a revision of its own may hold several events at one revision)
//   default: "revision" -> last written revision, "compacted" -> oldest revision kept in log,
//            "applied" -> the last replicated log index ApplyAt applied
// Every transaction is one WriteBatch, each object it writes at the next revision of its own.
// It is acknowledged only once its WAL record is synced: a sync thread flushes and fsyncs the
// WAL once for every write that arrived meanwhile (group commit), then publishes their watch
// events and completes their writers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace mentat {

struct RocksStoreOptions {
  std::string dir;
  bool sync = true;                        // fsync the WAL before acknowledging a write
  size_t watcher_buffer = 10000;           // events a watcher may lag before it is closed
  // Watch history kept by CompactToWindow: this many revisions or this much time, whichever
  // keeps more.
  int64_t history_revisions = 10000;
  std::chrono::seconds history_age{300};
};

class RocksStore : public Store {
 public:
  static Result<std::unique_ptr<RocksStore>> Open(const RocksStoreOptions& opts);
  ~RocksStore() override;

  Result<Json> Get(const ObjectKey& key) override;
  Result<ListResult> List(const std::string& kind, const ListOptions& opts) override;
  Result<Json> Put(const Json& obj, const WriteOptions& opts = {}) override;
  Result<Json> UpdateStatus(const Json& obj, const WriteOptions& opts = {}) override;
  Result<Json> Delete(const ObjectKey& key, const WriteOptions& opts = {}) override;
  using Store::Txn;
  Result<std::vector<TxnResult>> Txn(const std::vector<Json>& puts, bool dry_run,
                                     const std::vector<ObjectKey>& deletes) override;
  void TxnAsync(const std::vector<Json>& puts, bool dry_run, const std::vector<ObjectKey>& deletes,
                std::function<void(Result<std::vector<TxnResult>>)> done) override;
  Result<WatcherPtr> Watch(const std::string& kind, int64_t from_revision) override;
  int64_t CurrentRevision() override;
  Status Compact(int64_t revision) override;

  // Compacts everything older than the configured history window; returns the compacted
  // revision. The server calls it periodically.
  Result<int64_t> CompactToWindow();
  int64_t CompactedRevision();

  // The apply path a replicated log drives: one log entry is one transaction. Its `mutations`
  // (objects as the leader prepared them, each ADDED, MODIFIED or DELETED) are written at the
  // next consecutive revisions, one each, in one batch with the applied index `index`. Every
  // replica applies the same entries in the same order, so each gives them the same revisions.
  // An index at or below the applied one is skipped, so replaying a log after a crash is safe.
  // Returns whether the entry was applied.
  struct Mutation {
    EventType type;
    Json object;
    std::string json;  // filled by CommitLocked: the object as stored
  };
  Result<bool> ApplyAt(int64_t index, const std::vector<Mutation>& mutations);
  // The last index ApplyAt applied (0 when none), which survives a restart.
  int64_t AppliedIndex();

  // Every object, read at one revision (for snapshots). Returns that revision.
  Result<int64_t> ExportAll(std::vector<Json>* objects);
  // Fills an empty store with `objects` at `revision` (restore). History starts there.
  Status ImportAll(const std::vector<Json>& objects, int64_t revision);

  // Ends every open watch (they return kUnavailable); used on shutdown.
  void CloseWatchers();

  class WatcherImpl;

 private:
  explicit RocksStore(const RocksStoreOptions& opts) : opts_(opts) {}
  struct Change {
    ObjectKey key;
    EventType type;
    Json object;
    std::string json;  // filled by CommitLocked: the object as stored
  };
  Result<Json> GetLocked(const ObjectKey& key);
  // nullopt when absent, without building a NotFound error (the write path's common case).
  Result<std::optional<Json>> FindLocked(const ObjectKey& key);
  // The change a Put would make; nullopt (and *current set) when it changes nothing.
  Result<std::optional<Change>> PreparePutLocked(const Json& in, const WriteOptions& opts,
                                                 Json* current);
  // Writes every change in one batch (in the WAL buffer, not yet synced), each at the next
  // revision of its own, with `applied_index` when it is a replicated log's entry, and queues
  // their events. A dry run only sets the resourceVersions the changes would get. Returns the
  // last revision written (0 when nothing was written).
  Result<int64_t> CommitLocked(std::vector<Change>& changes, bool dry_run,
                               int64_t applied_index = 0);
  // Returns once `rev` is on disk (or the WAL could not be synced).
  Status WaitDurable(int64_t rev);
  // Runs `done` on the sync thread once `rev` is on disk, or at once if it already is.
  void WhenDurable(int64_t rev, std::function<void(Status)> done);
  // The group committer: flushes and syncs the WAL for every revision written so far, publishes
  // their events in revision order, then completes their writers.
  void SyncLoop();
  template <class T, class F>
  Result<T> Durably(F&& locked);
  Result<std::vector<TxnResult>> TxnLocked(const std::vector<Json>& puts, bool dry_run,
                                           const std::vector<ObjectKey>& deletes,
                                           int64_t* rev);
  Result<Json> UpdateStatusLocked(const Json& in, const WriteOptions& opts, int64_t* rev);
  Result<Json> DeleteLocked(const ObjectKey& key, const WriteOptions& opts, int64_t* rev);
  void Publish(const WatchEventPtr& ev);
  void Unregister(WatcherImpl* w);

  RocksStoreOptions opts_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* objects_ = nullptr;
  rocksdb::ColumnFamilyHandle* log_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;

  std::mutex write_mu_;  // serializes mutations: one transaction at a time
  int64_t revision_ = 0;  // last written (maybe not yet durable)
  int64_t applied_index_ = 0;  // last replicated log index applied (ApplyAt)
  int64_t compacted_ = 0;
  bool broken_ = false;   // a WAL sync failed: no more writes
  std::string broken_reason_;

  // Group commit.
  struct Completion {
    int64_t revision;
    std::function<void(Status)> done;
  };
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;     // wakes the sync thread
  std::condition_variable durable_cv_;  // wakes writers waiting in WaitDurable
  // Both count revisions; a transaction's writers wait for its last one.
  int64_t requested_revision_ = 0;  // highest revision a writer waits for
  int64_t durable_revision_ = 0;    // last revision known to be on disk and published
  std::vector<Completion> completions_;  // asynchronous writers not yet durable
  bool stopping_sync_ = false;
  std::optional<std::string> sync_error_;
  std::thread syncer_;
  std::mutex pending_mu_;
  std::deque<WatchEventPtr> pending_events_;  // written, not yet durable, in revision order

  // Snapshots that paginated lists read from, by revision, with their last use.
  struct ListSnapshot {
    const void* snapshot;  // rocksdb::Snapshot
    std::chrono::steady_clock::time_point last_used;
  };
  std::mutex snapshots_mu_;
  std::map<int64_t, ListSnapshot> list_snapshots_;

  std::mutex watchers_mu_;
  std::list<std::shared_ptr<WatcherImpl>> watchers_;
};

std::string StoreKey(const ObjectKey& key);

}  // namespace mentat
