#include "store/raft/sim/invariants.h"

#include "store/raft/sim/kv_state_machine.h"

namespace mentat::raft::sim {
namespace {

std::string N(uint64_t v) { return std::to_string(v); }

}  // namespace

void Invariants::Fail(std::string what) {
  if (violation_.empty()) violation_ = std::move(what);
}

void Invariants::OnLeader(uint64_t node, uint64_t term, const LogImage& log) {
  auto [it, fresh] = leader_of_term_.emplace(term, node);
  if (!fresh && it->second != node) {
    return Fail("election safety: nodes " + N(it->second) + " and " + N(node) +
                " were both leader of term " + N(term));
  }
  for (const auto& [index, c] : committed_) {
    if (!log.Holds(index, c.raw)) {
      return Fail("leader completeness: node " + N(node) + ", leader of term " + N(term) +
                  ", lacks the entry committed at index " + N(index) + " (applied first by node " +
                  N(c.node) + ")");
    }
  }
}

void Invariants::OnWritten(uint64_t node, const std::vector<RaftEntry>& entries,
                           const LogImage& log) {
  for (const auto& e : entries) {
    auto prev = log.TermAt(e.index - 1);
    if (!prev) {
      return Fail("node " + N(node) + " wrote index " + N(e.index) +
                  " without the entry before it");
    }
    Written w{Fnv1a(e.raw), *prev, node};
    auto [it, fresh] = written_.emplace(std::make_pair(e.index, e.term), w);
    if (fresh) continue;
    if (it->second.hash != w.hash) {
      return Fail("log matching: nodes " + N(it->second.node) + " and " + N(node) +
                  " hold different entries at index " + N(e.index) + ", term " + N(e.term));
    }
    if (it->second.prev_term != w.prev_term) {
      return Fail("log matching: nodes " + N(it->second.node) + " and " + N(node) + " hold index " +
                  N(e.index) + ", term " + N(e.term) + " after entries of terms " +
                  N(it->second.prev_term) + " and " + N(w.prev_term));
    }
  }
}

void Invariants::OnApplied(uint64_t node, const RaftEntry& e, uint64_t state) {
  uint64_t& last = applied_[node];
  if (e.index != last + 1) {
    return Fail("node " + N(node) + " applied index " + N(e.index) + " after index " + N(last));
  }
  last = e.index;
  auto [it, fresh] = committed_.emplace(e.index, Committed{e.raw, state, node});
  if (!fresh && it->second.raw != e.raw) {
    return Fail("state machine safety: nodes " + N(it->second.node) + " and " + N(node) +
                " applied different entries at index " + N(e.index));
  }
  auto [st, first] = state_at_.emplace(e.index, state);
  if (!first && st->second != state) {
    return Fail("state machine safety: node " + N(node) + " reached another state at index " +
                N(e.index) + " than node " + N(it->second.node));
  }
}

void Invariants::OnRestored(uint64_t node, uint64_t index, uint64_t state) {
  applied_[node] = index;
  auto [st, first] = state_at_.emplace(index, state);
  if (!first && st->second != state) {
    Fail("state machine safety: the snapshot node " + N(node) + " installed at index " + N(index) +
         " is not the state the nodes applied there");
  }
}

void Invariants::CheckDurable(const std::map<uint64_t, const LogImage*>& durable) {
  // Indexes 1..voters are the configuration every node bootstraps with, committed by fiat on
  // each node (a node whose disk lost them bootstraps again), never replicated.
  for (auto it = committed_.upper_bound(voters_); it != committed_.end(); ++it) {
    const auto& [index, c] = *it;
    size_t holding = 0;
    for (const auto& [node, log] : durable) holding += log->Holds(index, c.raw) ? 1 : 0;
    if (holding <= voters_ / 2) {
      return Fail("durability: the entry committed at index " + N(index) + " is durable on " +
                  N(holding) + " of " + N(voters_) + " nodes only: a crash lost it");
    }
  }
}

}  // namespace mentat::raft::sim

namespace mentat::raft::sim {

void Invariants::CheckAcknowledged(uint64_t node, uint64_t acknowledged, const LogImage& durable) {
  if (durable.LastIndex() >= acknowledged) return;
  Fail("durability: node " + std::to_string(node) + " answered an append with its log at index " +
       std::to_string(acknowledged) + ", but after its crash its disk holds up to index " +
       std::to_string(durable.LastIndex()) +
       (durable.snapshot ? " (snapshot at " + std::to_string(durable.snapshot->index) + ")" : "") +
       ": what it acknowledged was not synced before the answer went out");
}

}  // namespace mentat::raft::sim
