// The single-node store: the object layer (object_layer.h) decides each write against the
// latest state, and the state machine (state_machine.h) applies it at once, at the next local
// revisions. OpenLocalStore opens one over RocksDB; the server and tests reach compaction and
// snapshots through the interfaces it hands out, never the backend itself.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/state_machine.h"
#include "store/store.h"

namespace mentat {

class LocalStore : public Store {
 public:
  explicit LocalStore(StateMachinePtr state_machine) : state_(std::move(state_machine)) {}

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

  Compactor& compactor() { return *state_; }
  Snapshotter& snapshotter() { return *state_; }
  StateMachine& state_machine() { return *state_; }
  // Ends every open watch (they return kUnavailable); used on shutdown.
  void CloseWatchers() { state_->CloseWatchers(); }

 private:
  // Applies a decided batch now (dry run: only stamps the revisions it would take). Returns the
  // last revision written, 0 when none. Under write_mu_.
  Result<int64_t> ApplyLocked(std::vector<Change>& changes, bool dry_run);
  // Runs `locked` under write_mu_ (it decides and applies one write, reporting its last
  // revision through its argument), then waits, unlocked, until that revision is durable.
  template <class T, class F>
  Result<T> Durably(F&& locked);
  // One object's write: `prepare` decides its change (nullopt, with the stored object, when
  // there is nothing to write). Returns the object as stored.
  template <class F>
  Result<Json> WriteOne(bool dry_run, F&& prepare);
  Result<std::vector<TxnResult>> TxnLocked(const std::vector<Json>& puts, bool dry_run,
                                           const std::vector<ObjectKey>& deletes, int64_t* rev);

  StateMachinePtr state_;
  // A write's decision and its apply happen under it, so that no other write lands between
  // the state the decision read and the apply: this is what makes conditional writes hold.
  std::mutex write_mu_;
};
using LocalStorePtr = std::unique_ptr<LocalStore>;

// A local store over a RocksDB state machine in opts.dir. kUnavailable when another process
// holds that directory.
Result<LocalStorePtr> OpenLocalStore(const StateMachineOptions& opts);

}  // namespace mentat
