#include "store/raft/replicated_store.h"

#include <future>

#include "store/object_layer.h"

namespace mentat::raft {

Status ReplicatedStore::Barrier() {
  std::promise<Status> promise;
  auto future = promise.get_future();
  node_.ReadBarrier([&promise](Status st) { promise.set_value(std::move(st)); });
  return future.get();
}

Result<Json> ReplicatedStore::Get(const ObjectKey& key) {
  MT_RETURN_IF_ERROR(Barrier());
  return GetLocal(key);
}

Result<Json> ReplicatedStore::GetLocal(const ObjectKey& key) {
  MT_ASSIGN_OR_RETURN(std::optional<Json> obj, state_.Find(key));
  if (!obj) return ObjectNotFound(key);
  return std::move(*obj);
}

Result<ListResult> ReplicatedStore::List(const std::string& kind, const ListOptions& opts) {
  if (!opts.local) MT_RETURN_IF_ERROR(Barrier());
  return state_.List(kind, opts);
}

Result<WatcherPtr> ReplicatedStore::Watch(const std::string& kind, int64_t from_revision) {
  // A revision the client saw on another member may not be applied here yet: this member
  // catches up with what is committed before it calls the revision the future.
  if (from_revision > state_.CurrentRevision()) MT_RETURN_IF_ERROR(Barrier());
  return state_.Watch(kind, from_revision);
}

int64_t ReplicatedStore::CurrentRevision() { return state_.CurrentRevision(); }

Status ReplicatedStore::Compact(int64_t revision) { return state_.Compact(revision); }

void ReplicatedStore::Replicate(Decider decide, Applied done, int attempt, bool confirmed) {
  RecordingReader reader(state_);
  auto changes = decide(reader);
  if ((!changes || changes->empty()) && !confirmed) {
    // Nothing to propose, so nothing at apply would catch a lagging state: decide again on a
    // state that has all that was committed.
    return node_.ReadBarrier([this, decide = std::move(decide), done = std::move(done),
                              attempt](Status st) mutable {
      if (!st) return done(std::unexpected(st.error()));
      Replicate(std::move(decide), std::move(done), attempt, /*confirmed=*/true);
    });
  }
  if (!changes) return done(std::unexpected(changes.error()));
  if (changes->empty()) return done(std::vector<Change>{});
  Proposal p;
  p.reads = reader.TakeReads();
  p.changes = std::move(*changes);
  node_.Propose(std::move(p), [this, decide = std::move(decide), done = std::move(done),
                               attempt](Result<std::vector<Change>> applied) mutable {
    // A conflict here is always the apply's: what the decision read changed meanwhile.
    if (!applied && applied.error().code() == Code::kConflict && attempt < kAttempts) {
      return Replicate(std::move(decide), std::move(done), attempt + 1);
    }
    if (!applied) return done(std::move(applied));
    int64_t last = applied->empty() ? 0 : ResourceVersionOf(applied->back().object);
    state_.WhenDurable(last, [done = std::move(done), applied = std::move(*applied)](Status st) mutable {
      if (!st) return done(std::unexpected(st.error()));
      done(std::move(applied));
    });
  });
}

Result<std::vector<Change>> ReplicatedStore::ReplicateAndWait(Decider decide) {
  std::promise<Result<std::vector<Change>>> promise;
  auto future = promise.get_future();
  Replicate(std::move(decide), [&promise](Result<std::vector<Change>> r) { promise.set_value(std::move(r)); });
  return future.get();
}

Result<Json> ReplicatedStore::WriteOne(bool dry_run, const Prepare& prepare) {
  Json current;
  if (dry_run) {
    MT_RETURN_IF_ERROR(Barrier());
    MT_ASSIGN_OR_RETURN(std::optional<Change> change, prepare(state_, &current));
    if (!change) return current;
    std::vector<Change> changes{std::move(*change)};
    MT_ASSIGN_OR_RETURN(int64_t next, state_.NextRevision());
    StampRevisions(changes, next);
    return std::move(changes[0].object);
  }
  MT_ASSIGN_OR_RETURN(std::vector<Change> applied,
                      ReplicateAndWait([&](ObjectReader& reader) -> Result<std::vector<Change>> {
                        MT_ASSIGN_OR_RETURN(std::optional<Change> change, prepare(reader, &current));
                        if (!change) return std::vector<Change>{};
                        return std::vector<Change>{std::move(*change)};
                      }));
  if (applied.empty()) return current;
  return std::move(applied[0].object);
}

Result<Json> ReplicatedStore::Put(const Json& in, const WriteOptions& opts) {
  return WriteOne(opts.dry_run,
                  [&](ObjectReader& r, Json* current) { return PreparePut(r, in, opts, current); });
}

Result<Json> ReplicatedStore::UpdateStatus(const Json& in, const WriteOptions& opts) {
  return WriteOne(opts.dry_run, [&](ObjectReader& r, Json* current) {
    return PrepareUpdateStatus(r, in, opts, current);
  });
}

Result<Json> ReplicatedStore::Delete(const ObjectKey& key, const WriteOptions& opts) {
  return WriteOne(opts.dry_run,
                  [&](ObjectReader& r, Json* current) { return PrepareDelete(r, key, opts, current); });
}

Result<std::vector<TxnResult>> ReplicatedStore::Txn(const std::vector<Json>& puts, bool dry_run,
                                                    const std::vector<ObjectKey>& deletes) {
  std::promise<Result<std::vector<TxnResult>>> promise;
  auto future = promise.get_future();
  TxnAsync(puts, dry_run, deletes,
           [&promise](Result<std::vector<TxnResult>> r) { promise.set_value(std::move(r)); });
  return future.get();
}

void ReplicatedStore::TxnAsync(const std::vector<Json>& puts, bool dry_run,
                               const std::vector<ObjectKey>& deletes,
                               std::function<void(Result<std::vector<TxnResult>>)> done) {
  auto plan = std::make_shared<TxnPlan>();
  if (dry_run) {
    return node_.ReadBarrier([this, plan, puts, deletes, done = std::move(done)](Status st) {
      if (!st) return done(std::unexpected(st.error()));
      auto decided = PrepareTxn(state_, puts, deletes);
      if (!decided) return done(std::unexpected(decided.error()));
      *plan = std::move(*decided);
      auto next = state_.NextRevision();
      if (!next) return done(std::unexpected(next.error()));
      StampRevisions(plan->changes, *next);
      done(FinishTxn(*plan));
    });
  }
  Replicate(
      [plan, puts, deletes](ObjectReader& reader) -> Result<std::vector<Change>> {
        MT_ASSIGN_OR_RETURN(*plan, PrepareTxn(reader, puts, deletes));
        return plan->changes;
      },
      [plan, done = std::move(done)](Result<std::vector<Change>> applied) {
        if (!applied) return done(std::unexpected(applied.error()));
        plan->changes = std::move(*applied);
        done(FinishTxn(*plan));
      });
}

}  // namespace mentat::raft
