// The RocksDB state machine under the store. Layout (column families):
//   objects: StoreKey ("<Kind>/<namespace>/<name>") -> object JSON
//   log:     8-byte big-endian revision  -> {"t", "events":[the one event at that revision]}
//            (the change log watch resumes from; stores written before every object write had
//            a revision of its own may hold several events at one revision)
//   default: "revision" -> last written revision, "compacted" -> oldest revision kept in log,
//            "applied" -> the last replicated log index ApplyAt applied, "members" -> a
//            replicated control plane's members as its log last changed them (JSON),
//            "member-name" -> the name of the member this database is (ClusterMember)
//   raft:    the replicated log's own entries and state (store/raft/rocks_raft_log.h), in the
//            same database so that one WAL sync makes both durable
// Every batch is one WriteBatch, each change at the next revision of its own. A local write
// counts as durable only once its WAL record is synced: a sync thread flushes and fsyncs the WAL
// once for every batch that arrived meanwhile (group commit), then publishes their watch events
// and completes their waiters. A write at a replicated log's index is durable as soon as it is
// written (its entry, synced before it was applied, replays it): no sync of its own, and its
// events go out when the node publishes what it applied (PublishApplied, once per batch).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/state_machine.h"
#include "store/watch_hub.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Snapshot;
}  // namespace rocksdb

namespace mentat {

class RocksStateMachine : public StateMachine {
 public:
  static Result<std::unique_ptr<RocksStateMachine>> Open(const StateMachineOptions& opts);
  ~RocksStateMachine() override;

  Result<std::optional<Json>> Find(const ObjectKey& key) override;

  Result<Applied> ApplyAt(int64_t index, std::vector<Change>& changes) override;
  Result<int64_t> NextRevision() override;
  Status WaitDurable(int64_t revision) override;
  void WhenDurable(int64_t revision, std::function<void(Status)> done) override;
  void PublishApplied() override;
  int64_t CurrentRevision() override;
  int64_t AppliedIndex() override;

  Result<ListResult> List(const std::string& kind, const ListOptions& opts) override;
  Result<WatcherPtr> Watch(const std::string& kind, int64_t from_revision) override;
  void CloseWatchers() override;

  Status Compact(int64_t revision) override;
  Result<int64_t> CompactToWindow() override;
  int64_t CompactedRevision() override;

  Result<int64_t> ExportAll(std::vector<Json>* objects) override;
  Status ImportAll(const std::vector<Json>& objects, int64_t revision) override;

  // A replicated control plane's members as applied at `index` (a configuration change),
  // written with the applied index in one batch; nothing when `index` was applied before.
  Status ApplyMembersAt(int64_t index, const std::string& members);
  // The members last applied ("" when none was).
  Result<std::string> Members();
  // Replaces the members record whatever the index (--force-new-cluster), synced.
  Status ReplaceMembers(const std::string& members);
  // The name of the member this database belongs to ("" until recorded), and its record,
  // synced. It stays with this database: a state image neither carries nor replaces it.
  Result<std::string> OwnName();
  Status RecordOwnName(const std::string& name);

  // A consistent view of the whole state for a snapshot: the database snapshot, and the log
  // index and revision it is at. Give it back with ReleaseState.
  struct PinnedState {
    const rocksdb::Snapshot* snapshot = nullptr;
    int64_t applied = 0;
    int64_t revision = 0;
  };
  PinnedState PinState();
  void ReleaseState(const PinnedState& pinned);
  // Writes the pinned state (the objects, the change log, and the revision, compaction and
  // applied marks; not the Raft log) as a state image (state_image.h) to `sink`, in pieces of
  // about `chunk` bytes.
  Status WriteImage(const PinnedState& pinned, size_t chunk,
                    const std::function<Status(std::string_view)>& sink);
  // Replaces the whole state with the image in the file `path`, which is checked whole before
  // anything changes; synced before it returns. Open watches are closed (their clients resume
  // from the change log, which the image carries); writes waiting to be durable complete.
  Status InstallImage(const std::string& path);

  // The database and its "raft" column family, for the Raft log kept beside the state
  // (rocks_raft_log.h); both live as long as this state machine.
  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* raft_family() const { return raft_; }

 private:
  explicit RocksStateMachine(const StateMachineOptions& opts)
      : opts_(opts), watches_(opts.watcher_buffer) {}
  // Writes every change in one batch (in the WAL buffer, not yet synced), each at the next
  // revision of its own, with `index` unless it is kLocalWrite, and queues their events.
  // Returns the last revision written.
  Result<int64_t> CommitLocked(std::vector<Change>& changes, int64_t index);
  // The snapshots a page of a list reads from. A new one, at the current revision:
  const rocksdb::Snapshot* NewListSnapshot(int64_t* revision);
  // The one a continue token's first page kept (kGone once it expired), with the key the page
  // starts after; nullptr without a token. Releases those unused for a while.
  Result<const rocksdb::Snapshot*> KeptListSnapshot(const std::string& prefix,
                                                    const std::string& token,
                                                    std::string* start_after, int64_t* revision);
  // Keeps `snap` for the list's next page when there is one (`more`), or releases it.
  void KeepOrReleaseListSnapshot(const rocksdb::Snapshot* snap, int64_t revision, bool more);
  // A record of the default column family ("" when absent), and one written and synced;
  // errors say `what` was being done.
  Result<std::string> GetMeta(const char* key, const char* what);
  Status PutMetaSynced(const char* key, const std::string& value, const char* what);
  struct Completion {
    int64_t revision;
    std::function<void(Status)> done;
  };
  // The group committer: flushes and syncs the WAL for every revision written so far, publishes
  // their events in revision order, then completes their waiters.
  void SyncLoop();
  // Under sync_mu_: every revision up to `target` is durable; publishes their events and
  // returns the waiters to complete (outside the lock).
  std::vector<Completion> PublishDurableLocked(int64_t target);
  Result<Applied> ApplyLocked(int64_t index, std::vector<Change>& changes);

  StateMachineOptions opts_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* objects_ = nullptr;
  rocksdb::ColumnFamilyHandle* log_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* raft_ = nullptr;

  std::mutex write_mu_;        // serializes batches: one at a time
  int64_t revision_ = 0;       // last written (maybe not yet durable)
  int64_t applied_index_ = 0;  // last replicated log index applied (ApplyAt)
  int64_t compacted_ = 0;
  bool broken_ = false;  // a WAL sync failed: no more writes
  std::string broken_reason_;

  // Group commit.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;     // wakes the sync thread
  std::condition_variable durable_cv_;  // wakes writers waiting in WaitDurable
  // Both count revisions; a batch's waiters wait for its last one.
  int64_t requested_revision_ = 0;       // highest revision a writer waits for
  int64_t durable_revision_ = 0;         // last revision known to be on disk and published
  int64_t logged_revision_ = 0;          // last written at a log index (durable through the log)
  std::vector<Completion> completions_;  // asynchronous waiters not yet durable
  bool stopping_sync_ = false;
  std::optional<std::string> sync_error_;
  std::thread syncer_;
  std::mutex pending_mu_;
  std::deque<WatchEventPtr> pending_events_;  // written, not yet durable, in revision order

  // Snapshots that paginated lists read from, by revision, with their last use.
  struct KeptSnapshot {
    const rocksdb::Snapshot* snapshot;
    std::chrono::steady_clock::time_point last_used;
  };
  std::mutex snapshots_mu_;
  std::map<int64_t, KeptSnapshot> list_snapshots_;

  WatchHub watches_;
};

}  // namespace mentat
