#include "store/local_store.h"

#include "store/object_layer.h"
#include "store/rocksdb_state_machine.h"

namespace mentat {

Result<LocalStorePtr> OpenLocalStore(const StateMachineOptions& opts) {
  MT_ASSIGN_OR_RETURN(auto state, RocksStateMachine::Open(opts));
  return std::make_unique<LocalStore>(std::move(state));
}

Result<Json> LocalStore::Get(const ObjectKey& key) {
  MT_ASSIGN_OR_RETURN(std::optional<Json> obj, state_->Find(key));
  if (!obj) return ObjectNotFound(key);
  return std::move(*obj);
}

Result<ListResult> LocalStore::List(const std::string& kind, const ListOptions& opts) {
  return state_->List(kind, opts);
}

Result<WatcherPtr> LocalStore::Watch(const std::string& kind, int64_t from_revision) {
  return state_->Watch(kind, from_revision);
}

int64_t LocalStore::CurrentRevision() { return state_->CurrentRevision(); }

Status LocalStore::Compact(int64_t revision) { return state_->Compact(revision); }

Result<int64_t> LocalStore::ApplyLocked(std::vector<Change>& changes, bool dry_run) {
  if (changes.empty()) return int64_t{0};
  if (dry_run) {
    // A dry run shows the revisions the changes would take, and takes none.
    MT_ASSIGN_OR_RETURN(int64_t next, state_->NextRevision());
    StampRevisions(changes, next);
    return int64_t{0};
  }
  MT_ASSIGN_OR_RETURN(StateMachine::Applied applied,
                      state_->ApplyAt(StateMachine::kLocalWrite, changes));
  return applied.last_revision;
}

template <class T, class F>
Result<T> LocalStore::Durably(F&& locked) {
  int64_t rev = 0;
  Result<T> result = [&] {
    std::lock_guard<std::mutex> lock(write_mu_);
    return locked(&rev);
  }();
  if (!result) return result;
  MT_RETURN_IF_ERROR(state_->WaitDurable(rev));
  return result;
}

template <class F>
Result<Json> LocalStore::WriteOne(bool dry_run, F&& prepare) {
  return Durably<Json>([&](int64_t* rev) -> Result<Json> {
    Json current;
    MT_ASSIGN_OR_RETURN(std::optional<Change> change, prepare(&current));
    if (!change) return current;
    std::vector<Change> changes{std::move(*change)};
    MT_ASSIGN_OR_RETURN(*rev, ApplyLocked(changes, dry_run));
    return std::move(changes[0].object);
  });
}

Result<Json> LocalStore::Put(const Json& in, const WriteOptions& opts) {
  return WriteOne(opts.dry_run,
                  [&](Json* current) { return PreparePut(*state_, in, opts, current); });
}

Result<Json> LocalStore::UpdateStatus(const Json& in, const WriteOptions& opts) {
  return WriteOne(opts.dry_run,
                  [&](Json* current) { return PrepareUpdateStatus(*state_, in, opts, current); });
}

Result<Json> LocalStore::Delete(const ObjectKey& key, const WriteOptions& opts) {
  return WriteOne(opts.dry_run,
                  [&](Json* current) { return PrepareDelete(*state_, key, opts, current); });
}

Result<std::vector<TxnResult>> LocalStore::TxnLocked(const std::vector<Json>& puts, bool dry_run,
                                                     const std::vector<ObjectKey>& deletes,
                                                     int64_t* rev) {
  MT_ASSIGN_OR_RETURN(TxnPlan plan, PrepareTxn(*state_, puts, deletes));
  MT_ASSIGN_OR_RETURN(*rev, ApplyLocked(plan.changes, dry_run));
  return FinishTxn(plan);
}

Result<std::vector<TxnResult>> LocalStore::Txn(const std::vector<Json>& puts, bool dry_run,
                                               const std::vector<ObjectKey>& deletes) {
  return Durably<std::vector<TxnResult>>(
      [&](int64_t* rev) { return TxnLocked(puts, dry_run, deletes, rev); });
}

void LocalStore::TxnAsync(const std::vector<Json>& puts, bool dry_run,
                          const std::vector<ObjectKey>& deletes,
                          std::function<void(Result<std::vector<TxnResult>>)> done) {
  int64_t rev = 0;
  Result<std::vector<TxnResult>> result = [&] {
    std::lock_guard<std::mutex> lock(write_mu_);
    return TxnLocked(puts, dry_run, deletes, &rev);
  }();
  if (!result || rev == 0) return done(std::move(result));
  state_->WhenDurable(rev,
                      [result = std::move(result), done = std::move(done)](Status status) mutable {
                        if (!status) return done(std::unexpected(status.error()));
                        done(std::move(result));
                      });
}

}  // namespace mentat
