// The Store interface: versioned objects with a global revision, conditional writes, and
// ordered watch. Every mutation is one transaction, all or nothing, and each object it writes
// takes a revision of its own, consecutive within the transaction. The local store implements
// it (local_store.h: the object layer deciding each write, a RocksDB state machine applying
// it); Raft replication will apply the same decided batches from a log (one committed log entry
// per transaction, spanning that transaction's consecutive revisions).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"

namespace mentat {

enum class EventType { kAdded, kModified, kDeleted, kBookmark };
std::string EventTypeName(EventType t);

struct WatchEvent {
  EventType type;
  // This change's own revision: no other event has it. It is the object's resourceVersion
  // (for kDeleted, the revision of the deletion).
  int64_t revision;
  Json object;  // for kDeleted: the object as it was last stored; for kBookmark: {metadata:{rv}}
  // The event as JSON text, {"type":...,"object":...}, encoded once by the store and shared
  // by every watcher (the API server streams it as is).
  std::shared_ptr<const std::string> json;
};
using WatchEventPtr = std::shared_ptr<const WatchEvent>;

struct ListOptions {
  std::string ns;  // "" = all namespaces
  std::optional<LabelSelector> selector;
  size_t limit = 0;            // 0 = everything
  std::string continue_token;  // from the previous page's ListResult
  bool raw = false;            // fill raw_items (stored JSON text) instead of items
  // A replicated store answers from this member's state without a read barrier: it may lag
  // what other members acknowledged (a follower's ?consistency=local; a cache that this
  // member's own watch keeps current). One store alone is never behind.
  bool local = false;
};

struct ListResult {
  std::vector<Json> items;
  std::vector<std::string> raw_items;  // with ListOptions::raw
  // The store revision every page of the list is consistent at: always the end of a
  // transaction, so a watch from it gets every later change.
  int64_t revision = 0;
  std::string continue_token;  // non-empty when there are more items
};

struct WriteOptions {
  // 0: unconditional. Otherwise the object's current resourceVersion must equal it (409).
  int64_t expected_revision = 0;
  bool create_only = false;  // AlreadyExists if present
  bool dry_run = false;      // validate and compute the result, persist nothing
};

// One watch stream. Events arrive in revision order, each exactly once, each at a revision of
// its own.
class Watcher {
 public:
  virtual ~Watcher() = default;
  // Waits up to `timeout` for the next event (shared with every other watcher, not copied).
  // nullopt on timeout; an error once the watch is closed (store shut down, or this watcher fell
  // behind its bounded buffer).
  virtual Result<std::optional<WatchEventPtr>> Next(std::chrono::milliseconds timeout) = 0;
  // The next event without waiting; nullopt when none is queued.
  virtual Result<std::optional<WatchEventPtr>> TryNext() = 0;
  // Called (from the publishing thread, with store locks held: it must only schedule work)
  // whenever an event is queued or the watch closes. For event loops that hold no thread per
  // watch.
  virtual void SetNotify(std::function<void()> notify) = 0;
  virtual void Close() = 0;
};
using WatcherPtr = std::unique_ptr<Watcher>;

struct TxnResult {
  enum Action { kCreated, kConfigured, kUnchanged, kDeleted } action;
  Json object;  // as stored after the transaction
  std::string json;  // the same, as the JSON text stored (empty for kUnchanged and dry runs)
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<Json> Get(const ObjectKey& key) = 0;
  // Get from this member's own state, without a read barrier (ListOptions::local says what
  // that means). One store alone is never behind: the same as Get.
  virtual Result<Json> GetLocal(const ObjectKey& key) { return Get(key); }
  virtual Result<ListResult> List(const std::string& kind, const ListOptions& opts) = 0;

  // Create or update the object's metadata and spec; status is kept as stored. Sets
  // uid/creationTimestamp on create, resourceVersion always, generation+1 when spec changes.
  virtual Result<Json> Put(const Json& obj, const WriteOptions& opts = {}) = 0;
  // Replace only the status. NotFound when absent.
  virtual Result<Json> UpdateStatus(const Json& obj, const WriteOptions& opts = {}) = 0;
  virtual Result<Json> Delete(const ObjectKey& key, const WriteOptions& opts = {}) = 0;
  // Several Puts (and Deletes) as one transaction: all are written or none is, in one atomic
  // write that is durable as a whole. Each object written takes the next revision of its own
  // (the puts in order, then the deletes), so the transaction spans consecutive revisions and
  // each of its watch events has its own; an unchanged object or a skipped delete takes none.
  // A failed transaction takes none either, and a dry run only shows the revisions it would
  // take. An object carrying metadata.resourceVersion is written only if it still has that
  // version. A delete of an absent object is skipped; one with finalizers marks it
  // (deletionTimestamp), as Delete does. Results: the puts in order, then the deletes done.
  virtual Result<std::vector<TxnResult>> Txn(const std::vector<Json>& puts, bool dry_run,
                                             const std::vector<ObjectKey>& deletes) = 0;
  Result<std::vector<TxnResult>> Txn(const std::vector<Json>& puts, bool dry_run) {
    return Txn(puts, dry_run, {});
  }
  // Txn without blocking the caller until the write is durable: the transaction is prepared and
  // written now, and `done` gets its result once it is durable, on the store's own thread (it
  // must only hand the result on), or at once, on the caller's thread, when it failed or wrote
  // nothing.
  virtual void TxnAsync(const std::vector<Json>& puts, bool dry_run,
                        const std::vector<ObjectKey>& deletes,
                        std::function<void(Result<std::vector<TxnResult>>)> done) = 0;

  // Every change to `kind` ("" = all kinds) after `from_revision`, in order. 0 = from now.
  // kGone when from_revision has been compacted away. Resuming from the revision of the last
  // event processed (or of a list) is exact: nothing is missed and nothing repeated, wherever
  // in a transaction's events the last one was.
  virtual Result<WatcherPtr> Watch(const std::string& kind, int64_t from_revision) = 0;

  // The last revision written: the end of the latest transaction.
  virtual int64_t CurrentRevision() = 0;
  // Drops watch history at and below `revision`: a watch from there gets kGone (410).
  virtual Status Compact(int64_t revision) = 0;
};
using StorePtr = std::unique_ptr<Store>;

}  // namespace mentat
