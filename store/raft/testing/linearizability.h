// A linearizability checker for histories of concurrent operations against a sequential model:
// Porcupine's search (github.com/anishathalye/porcupine), i.e. Wing & Gong's backtracking over
// the operations that may come next, with Lowe's cache of (linearized set, model state) pairs
// already explored and P-compositionality (operations in different partitions, e.g. keys, are
// checked apart). It knows nothing of Raft or of the simulation: a test that drives real
// processes records a History the same way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mentat::raft::testing {

// One client operation as the client saw it. Times are any monotonic clock shared by the
// clients (a logical counter in the simulation); an operation that returned before another was
// called precedes it. Operations whose intervals overlap (equal times included) are concurrent.
template <typename Input, typename Output>
struct Operation {
  int client = 0;
  Input input;
  // nullopt: the outcome is unknown (a timeout, a crashed server). Such an operation may take
  // effect at any time after its call, or never.
  std::optional<Output> output;
  uint64_t call = 0;
  uint64_t ret = 0;  // meaningless when output is nullopt
};

// The sequential specification. State must be copyable and equality-comparable (==).
template <typename State, typename Input, typename Output>
struct Model {
  State init;
  // The state after `input` answered `output` in `state`, or nullopt when that answer is
  // impossible there. With output nullopt (unknown) it must say what the operation would do.
  std::function<std::optional<State>(const State&, const Input&, const std::optional<Output>&)>
      step;
  // Operations of different partitions never affect each other. Empty: one partition.
  std::function<std::string(const Input&)> partition;
  // For failure reports.
  std::function<std::string(const Input&, const std::optional<Output>&)> describe;
};

enum class Verdict {
  kLinearizable,
  kNotLinearizable,
  kUnknown,  // the search budget ran out before an answer
};
const char* VerdictName(Verdict v);

struct CheckOptions {
  // Search steps (one candidate tried, or one backtrack) over all partitions; past it the
  // verdict is kUnknown instead of an unbounded search.
  uint64_t max_steps = 20'000'000;
};

struct CheckResult {
  Verdict verdict = Verdict::kLinearizable;
  uint64_t steps = 0;
  std::string partition;    // the first partition found not linearizable (or out of budget)
  std::string explanation;  // its longest linearizable prefix and what could not follow it
};

// The set of operations linearized so far, as the cache's key.
class OpSet {
 public:
  explicit OpSet(size_t n) : words_((n + 63) / 64, 0) {}
  void Set(size_t i) { words_[i / 64] |= uint64_t{1} << (i % 64); }
  void Clear(size_t i) { words_[i / 64] &= ~(uint64_t{1} << (i % 64)); }
  uint64_t Hash() const;
  bool operator==(const OpSet& o) const { return words_ == o.words_; }

 private:
  std::vector<uint64_t> words_;
};

// The call and return events of one partition in time order, as a doubly linked list that the
// search lifts operations out of and puts back (in reverse order) when it backtracks.
class EventList {
 public:
  static constexpr int kNone = -1;
  // `calls[i]`, `returns[i]` (nullopt: unknown outcome, no return event) of operation i.
  EventList(const std::vector<uint64_t>& calls,
            const std::vector<std::optional<uint64_t>>& returns);
  int first() const { return next_[0]; }
  int next(int node) const { return next_[node]; }
  bool is_call(int node) const { return is_call_[node]; }
  size_t op(int node) const { return op_[node]; }
  // Takes a call and its return out of the list / puts them back.
  void Lift(int call);
  void Unlift(int call);

 private:
  void Remove(int node);
  void Reinsert(int node);
  // Node 0 is the head; node k > 0 is the (k-1)th event in time order.
  std::vector<int> next_, prev_, match_;
  std::vector<bool> is_call_;
  std::vector<size_t> op_;
};

namespace internal {

std::string Explain(const std::vector<std::string>& linearized,
                    const std::vector<std::string>& stuck, size_t total);

template <typename State, typename Input, typename Output>
Verdict CheckPartition(const Model<State, Input, Output>& model,
                       const std::vector<const Operation<Input, Output>*>& ops, uint64_t& budget,
                       std::string& explanation) {
  std::vector<uint64_t> calls;
  std::vector<std::optional<uint64_t>> returns;
  size_t completed = 0;
  for (const auto* op : ops) {
    calls.push_back(op->call);
    returns.push_back(op->output ? std::optional<uint64_t>(op->ret) : std::nullopt);
    if (op->output) ++completed;
  }
  EventList events(calls, returns);
  struct Frame {
    int call;
    State before;
  };
  std::vector<Frame> stack;
  std::vector<int> deepest;  // the calls of the longest prefix linearized, for the report
  int deepest_stuck = EventList::kNone;
  std::unordered_map<uint64_t, std::vector<std::pair<OpSet, State>>> seen;
  OpSet linearized(ops.size());
  State state = model.init;
  size_t done = 0;  // completed operations linearized
  int node = events.first();
  auto is_new = [&](const OpSet& set, const State& s) {
    auto& bucket = seen[set.Hash()];
    for (const auto& [set2, s2] : bucket) {
      if (set2 == set && s2 == s) return false;
    }
    bucket.emplace_back(set, s);
    return true;
  };
  while (done < completed) {
    if (budget == 0) return Verdict::kUnknown;
    --budget;
    if (node != EventList::kNone && events.is_call(node)) {
      const auto& op = *ops[events.op(node)];
      auto after = model.step(state, op.input, op.output);
      if (after) {
        OpSet with = linearized;
        with.Set(events.op(node));
        if (is_new(with, *after)) {
          stack.push_back({node, std::move(state)});
          state = std::move(*after);
          linearized = std::move(with);
          if (op.output) ++done;
          events.Lift(node);
          node = events.first();
          continue;
        }
      }
      node = events.next(node);
      continue;
    }
    // A return whose operation fits nowhere in this prefix: take back the last choice.
    if (node != EventList::kNone &&
        (deepest_stuck == EventList::kNone || stack.size() > deepest.size())) {
      deepest.clear();
      for (const auto& f : stack) deepest.push_back(f.call);
      deepest_stuck = node;
    }
    if (stack.empty()) break;
    Frame f = std::move(stack.back());
    stack.pop_back();
    state = std::move(f.before);
    linearized.Clear(events.op(f.call));
    if (ops[events.op(f.call)]->output) --done;
    events.Unlift(f.call);
    node = events.next(f.call);
  }
  if (done == completed) return Verdict::kLinearizable;
  std::vector<std::string> prefix, stuck;
  for (int call : deepest) {
    const auto& op = *ops[events.op(call)];
    prefix.push_back(model.describe ? model.describe(op.input, op.output) : "op");
  }
  if (deepest_stuck != EventList::kNone) {
    const auto& op = *ops[events.op(deepest_stuck)];
    stuck.push_back(model.describe ? model.describe(op.input, op.output) : "op");
  }
  explanation = Explain(prefix, stuck, ops.size());
  return Verdict::kNotLinearizable;
}

}  // namespace internal

// Whether some total order of `history` that respects real time (an operation that returned
// before another was called comes first) is a run of `model`, each operation answering as it
// did; operations of unknown outcome may be left out or placed anywhere after their call.
template <typename State, typename Input, typename Output>
CheckResult CheckLinearizable(const Model<State, Input, Output>& model,
                              const std::vector<Operation<Input, Output>>& history,
                              const CheckOptions& options = {}) {
  std::map<std::string, std::vector<const Operation<Input, Output>*>> partitions;
  for (const auto& op : history) {
    partitions[model.partition ? model.partition(op.input) : std::string()].push_back(&op);
  }
  CheckResult result;
  uint64_t budget = options.max_steps;
  for (const auto& [key, ops] : partitions) {
    Verdict v = internal::CheckPartition(model, ops, budget, result.explanation);
    if (v != Verdict::kLinearizable) {
      result.verdict = v;
      result.partition = key;
      if (v == Verdict::kUnknown) result.explanation = "the search budget ran out";
      break;
    }
  }
  result.steps = options.max_steps - budget;
  return result;
}

// Records a history as it happens, on a logical clock: Call before the request leaves, Return
// once its answer is in; an operation never returned keeps an unknown outcome. Thread-safe, so
// that clients on threads (a test against real servers) can share one: the clock's order is
// then a real-time order.
template <typename Input, typename Output>
class History {
 public:
  size_t Call(int client, Input input) {
    std::lock_guard<std::mutex> lock(mu_);
    ops_.push_back({client, std::move(input), std::nullopt, ++clock_, 0});
    return ops_.size() - 1;
  }
  void Return(size_t id, Output output) {
    std::lock_guard<std::mutex> lock(mu_);
    ops_[id].output = std::move(output);
    ops_[id].ret = ++clock_;
  }
  // A copy, taken once every client is done.
  std::vector<Operation<Input, Output>> ops() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ops_;
  }
  // The operation `id` (Call's result): only while no other thread records.
  const Operation<Input, Output>& at(size_t id) const { return ops_[id]; }

 private:
  mutable std::mutex mu_;
  uint64_t clock_ = 0;
  std::vector<Operation<Input, Output>> ops_;
};

}  // namespace mentat::raft::testing
