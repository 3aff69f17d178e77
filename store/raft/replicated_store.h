// ReplicatedStore: the Store over a Raft-replicated log. Reads are served from this member's
// state machine (the state every member reaches at the same log index) after a read barrier
// (RaftNode::ReadBarrier): this member has applied all that was committed when the read began,
// so a read on a follower sees every write acknowledged before it (linearizable). Watches and
// CurrentRevision are this member's own, without a barrier, except a watch from a revision this
// member has not reached: it catches up first (the client saw it on another member).
//
// A write is decided here by the object layer against this member's state (RecordingReader
// notes what it read), proposed to the log through this member's RaftNode, and answered when
// this member has applied it and its revision is durable. When another write changed what the
// decision read (the entry is refused at apply, on every member alike), the write is decided
// again on the newer state, a few times at most: an unconditional write then succeeds, a
// conditional one gets its own kConflict. A decision that writes nothing (an error such as
// kNotFound or kConflict, or no change) is never answered from a state that may lag: it is made
// again after a read barrier, and that answer stands. Dry runs decide after a barrier.
#pragma once

#include <functional>
#include <vector>

#include "store/raft/raft_node.h"
#include "store/store.h"

namespace mentat::raft {

class ReplicatedStore : public Store {
 public:
  // `state` and `node` outlive the store; `node` applies to `state`.
  ReplicatedStore(RocksStateMachine& state, RaftNode& node) : state_(state), node_(node) {}

  Result<Json> Get(const ObjectKey& key) override;
  Result<Json> GetLocal(const ObjectKey& key) override;
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
  // Watch history is each member's own: this member's is compacted.
  Status Compact(int64_t revision) override;

  // How many times a write is decided again after others changed what it read.
  // Each refusal means another write landed, so some write always progresses.
  static constexpr int kAttempts = 16;

 private:
  // Decides a write against `reader`: its changes (none: nothing to write).
  using Decider = std::function<Result<std::vector<Change>>(ObjectReader& reader)>;
  using Applied = std::function<void(Result<std::vector<Change>>)>;
  // Decides, proposes, and calls `done` with the changes as applied here (with their
  // revisions) once durable; decides again on an apply-time conflict, and after a read barrier
  // when the decision writes nothing and was not made after one (`confirmed`).
  void Replicate(Decider decide, Applied done, int attempt = 1, bool confirmed = false);
  Result<std::vector<Change>> ReplicateAndWait(Decider decide);
  // One object's write; `prepare` is the object layer's decision for it.
  using Prepare = std::function<Result<std::optional<Change>>(ObjectReader&, Json* current)>;
  Result<Json> WriteOne(bool dry_run, const Prepare& prepare);
  // Waits for RaftNode::ReadBarrier.
  Status Barrier();

  RocksStateMachine& state_;
  RaftNode& node_;
};

}  // namespace mentat::raft
