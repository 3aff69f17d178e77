// The object layer: turns a write request and the stored state it reads into a decided batch of
// changes (state_machine.h). It owns the rules of Mentat's objects: uid and creationTimestamp on
// create, generation+1 only when the spec changes, status kept apart from spec writes,
// finalizers and deletionTimestamp, and the conditional-write checks. Revisions are not its
// business: the state machine gives them when it applies the batch.
//
// Each function is pure logic over `reader` and writes nothing. Its decision holds only if no
// other write is applied between the read and the apply: callers serialize the two.
#pragma once

#include <optional>
#include <vector>

#include "store/state_machine.h"
#include "store/store.h"

namespace mentat {

// The NotFound error for `key`, as every read and write of an absent object reports it.
std::unexpected<Error> ObjectNotFound(const ObjectKey& key);

// Store::Put's change: nullopt (with *current set to the stored object) when it changes nothing.
// kConflict when opts.expected_revision is not the stored resourceVersion, kAlreadyExists for
// create_only, FailedPrecondition for a finalizer added while the object is being deleted. An
// object being deleted whose last finalizer the write removes becomes a kDeleted change.
Result<std::optional<Change>> PreparePut(ObjectReader& reader, const Json& in,
                                         const WriteOptions& opts, Json* current);

// Store::UpdateStatus's change: nullopt (with *current set) when the status is unchanged.
// NotFound when absent, kConflict as for PreparePut.
Result<std::optional<Change>> PrepareUpdateStatus(ObjectReader& reader, const Json& in,
                                                  const WriteOptions& opts, Json* current);

// Store::Delete's change: a kDeleted change, or, while finalizers hold the object, a kModified
// one that marks it with a deletionTimestamp; nullopt (with *current set) when it is marked
// already. NotFound when absent, kConflict as for PreparePut.
Result<std::optional<Change>> PrepareDelete(ObjectReader& reader, const ObjectKey& key,
                                            const WriteOptions& opts, Json* current);

// Store::Txn's decision: `changes` to apply as one batch (the puts in order, then the deletes),
// and `results`, one per put and per delete done, completed by FinishTxn once applied.
struct TxnPlan {
  std::vector<Change> changes;
  std::vector<TxnResult> results;
};
Result<TxnPlan> PrepareTxn(ObjectReader& reader, const std::vector<Json>& puts,
                           const std::vector<ObjectKey>& deletes);
// The results of an applied (or dry-run) plan: each changed object as stored, with its text.
std::vector<TxnResult> FinishTxn(TxnPlan& plan);

}  // namespace mentat
