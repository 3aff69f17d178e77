// A write as the replicated log carries it: decided once, on the node that took the request,
// and applied on every node at the same log index. The decision (object_layer.h) fixes what is
// not deterministic (uids, timestamps, generations); `reads` records every object it read and
// the resourceVersion it had (0: absent). When the entry is applied, each node checks those
// reads against its own state, which is the same on every node at that index: if any object
// changed since the decision, the whole batch is refused everywhere (kConflict) and only the
// applied index moves. So two conditional writes decided against the same state and proposed
// together can never both succeed, whichever node decided them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/state_machine.h"

namespace mentat {

struct ReadCheck {
  ObjectKey key;
  int64_t resource_version = 0;  // as read by the decision; 0 when the object was absent
};

struct Proposal {
  std::string id;  // the proposer's, to hand the result back to the waiting request
  std::vector<ReadCheck> reads;
  std::vector<Change> changes;
};

std::string EncodeProposal(const Proposal& p);
// InvalidArgument for bytes that are not a proposal.
Result<Proposal> DecodeProposal(std::string_view bytes);

// An ObjectReader over `inner` that remembers the first version of each object it read.
class RecordingReader : public ObjectReader {
 public:
  explicit RecordingReader(ObjectReader& inner) : inner_(inner) {}
  Result<std::optional<Json>> Find(const ObjectKey& key) override;
  std::vector<ReadCheck> TakeReads() { return std::move(reads_); }

 private:
  ObjectReader& inner_;
  std::vector<ReadCheck> reads_;
};

// Applies `p` at `index` when every read still holds in `state`; its changes get their
// revisions (StateMachine::ApplyAt). Otherwise kConflict, naming the first object that changed,
// and the index is recorded as applied with nothing written. Replayed indexes are skipped.
Result<StateMachine::Applied> ApplyProposal(StateMachine& state, int64_t index, Proposal& p);

}  // namespace mentat
