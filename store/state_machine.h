// The state machine under the store: it applies batches that are already decided (what to write,
// which event each write is) at the next revisions, keeps the change log that watches resume
// from, and publishes watch events once a batch is durable. The object layer (object_layer.h)
// decides; a local store applies its own decisions at once, and a replicated one will propose
// them to a log and apply each committed entry on every node, in log order.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/store.h"

namespace mentat {

// One decided write: `object` is stored at `key` (kAdded, kModified) or removed from it
// (kDeleted, `object` being what was last stored there), and is the event watchers receive.
struct Change {
  ObjectKey key;
  EventType type;
  Json object;
  std::string json;  // filled by ApplyAt: the object as the JSON text stored
};

// "<Kind>/<namespace>/<name>": the one string each object is stored under.
std::string StoreKey(const ObjectKey& key);

// Gives each change in `changes` the resourceVersion it takes when the batch starts at `first`:
// first, first+1, ..., in order.
void StampRevisions(std::vector<Change>& changes, int64_t first);

struct StateMachineOptions {
  std::string dir;
  bool sync = true;               // fsync the WAL before a batch counts as durable
  size_t watcher_buffer = 10000;  // events a watcher may lag before it is closed
  // Watch history kept by CompactToWindow: this many revisions or this much time, whichever
  // keeps more.
  int64_t history_revisions = 10000;
  std::chrono::seconds history_age{300};
};

// What the object layer reads while it decides: the latest applied state.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  // The object stored at `key`; nullopt when there is none.
  virtual Result<std::optional<Json>> Find(const ObjectKey& key) = 0;
};

// The change log's retention. Objects are never touched by it, only watch history.
class Compactor {
 public:
  virtual ~Compactor() = default;
  // Drops watch history at and below `revision`: a watch from there gets kGone (410). A revision
  // at or below the compacted one is a no-op; one past the current revision is InvalidArgument.
  virtual Status Compact(int64_t revision) = 0;
  // Compacts everything older than the configured history window (StateMachineOptions);
  // returns the compacted revision. The server calls it periodically.
  virtual Result<int64_t> CompactToWindow() = 0;
  // The revision history is compacted to (0 when never); it survives a restart.
  virtual int64_t CompactedRevision() = 0;
};

// Whole-state export and import, for point-in-time snapshots (snapshot.h).
class Snapshotter {
 public:
  virtual ~Snapshotter() = default;
  // Every object, read at one revision, which it returns: always the end of a batch.
  virtual Result<int64_t> ExportAll(std::vector<Json>* objects) = 0;
  // Fills an empty state machine with `objects` at `revision`, durably. History starts there:
  // a watch from below it gets kGone. FailedPrecondition when anything was written before.
  virtual Status ImportAll(const std::vector<Json>& objects, int64_t revision) = 0;
};

class StateMachine : public ObjectReader, public Compactor, public Snapshotter {
 public:
  // A log index of 0: a local write, outside any replicated log.
  static constexpr int64_t kLocalWrite = 0;

  struct Applied {
    bool applied = false;       // false: `index` was applied before, so nothing was written
    int64_t last_revision = 0;  // the batch's last revision; 0 when it wrote none
  };

  // Applies `changes` as one atomic batch: each takes the next revision of its own (its
  // metadata.resourceVersion is set to it and its `json` filled), in order, so every replica
  // that applies the same batches in the same order gives them the same revisions. A log entry
  // at `index` is written together with that index, and an index at or below AppliedIndex() is
  // skipped, so replaying a log after a crash is safe; an entry with no changes advances the
  // applied index only. kLocalWrite is always applied and leaves the applied index alone.
  // A local write is written but not yet durable: nobody hears of it (no watch event) until
  // WaitDurable or WhenDurable says its last revision is. A write at a log index is durable
  // when it returns: the replicated log, synced before any of its entries is applied, replays
  // it after a crash (the state's own WAL sync would be a second fsync per write for nothing);
  // its events go out and its WhenDurable waiters complete at the next PublishApplied.
  // Internal once a sync has failed.
  virtual Result<Applied> ApplyAt(int64_t index, std::vector<Change>& changes) = 0;
  // The revision the next applied change will take; Internal once writes are refused (a sync
  // failed). A dry run shows it without applying anything.
  virtual Result<int64_t> NextRevision() = 0;
  // Returns once `revision` is durable and its events are published (at once for 0), or the
  // error that makes it never be.
  virtual Status WaitDurable(int64_t revision) = 0;
  // Runs `done` once `revision` is durable, on the state machine's own thread (it must only
  // hand the result on), or at once on the caller's when it already is or never will be.
  virtual void WhenDurable(int64_t revision, std::function<void(Status)> done) = 0;
  // Publishes every write applied at a log index so far (watch events in revision order) and
  // completes their WhenDurable waiters. The replicated node calls it once per batch it
  // applied: watchers and waiters are woken once a batch, not once a write.
  virtual void PublishApplied() = 0;

  // The last revision written: the end of the latest batch.
  virtual int64_t CurrentRevision() = 0;
  // The last log index applied (0 when none); it survives a restart.
  virtual int64_t AppliedIndex() = 0;

  // Reads of the latest applied state; the contracts are Store's.
  virtual Result<ListResult> List(const std::string& kind, const ListOptions& opts) = 0;
  virtual Result<WatcherPtr> Watch(const std::string& kind, int64_t from_revision) = 0;
  // Ends every open watch (they return kUnavailable); used on shutdown.
  virtual void CloseWatchers() = 0;
};
using StateMachinePtr = std::unique_ptr<StateMachine>;

}  // namespace mentat
