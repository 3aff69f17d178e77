#include "store/raft/testing/linearizability.h"

namespace mentat::raft::testing {

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kLinearizable:
      return "linearizable";
    case Verdict::kNotLinearizable:
      return "not linearizable";
    case Verdict::kUnknown:
      return "unknown (search budget exhausted)";
  }
  return "?";
}

uint64_t OpSet::Hash() const {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint64_t w : words_) {
    h ^= w + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0x100000001b3ULL;
  }
  return h;
}

EventList::EventList(const std::vector<uint64_t>& calls,
                     const std::vector<std::optional<uint64_t>>& returns) {
  struct Event {
    uint64_t time;
    bool is_call;
    size_t op;
  };
  std::vector<Event> order;
  for (size_t i = 0; i < calls.size(); ++i) {
    order.push_back({calls[i], true, i});
    if (returns[i]) order.push_back({*returns[i], false, i});
  }
  // At equal times calls come first: touching intervals count as concurrent (the permissive
  // reading, as Porcupine's).
  std::stable_sort(order.begin(), order.end(), [](const Event& a, const Event& b) {
    if (a.time != b.time) return a.time < b.time;
    return a.is_call && !b.is_call;
  });
  const size_t n = order.size() + 1;
  next_.resize(n);
  prev_.resize(n);
  match_.assign(n, kNone);
  is_call_.assign(n, false);
  op_.assign(n, 0);
  std::vector<int> call_node(calls.size(), kNone);
  for (size_t k = 0; k < n; ++k) {
    next_[k] = k + 1 < n ? static_cast<int>(k + 1) : kNone;
    prev_[k] = static_cast<int>(k) - 1;
  }
  for (size_t k = 1; k < n; ++k) {
    const Event& e = order[k - 1];
    is_call_[k] = e.is_call;
    op_[k] = e.op;
    if (e.is_call) {
      call_node[e.op] = static_cast<int>(k);
    } else {
      match_[call_node[e.op]] = static_cast<int>(k);
    }
  }
}

void EventList::Remove(int node) {
  next_[prev_[node]] = next_[node];
  if (next_[node] != kNone) prev_[next_[node]] = prev_[node];
}

void EventList::Reinsert(int node) {
  next_[prev_[node]] = node;
  if (next_[node] != kNone) prev_[next_[node]] = node;
}

void EventList::Lift(int call) {
  Remove(call);
  if (match_[call] != kNone) Remove(match_[call]);
}

void EventList::Unlift(int call) {
  if (match_[call] != kNone) Reinsert(match_[call]);
  Reinsert(call);
}

namespace internal {

std::string Explain(const std::vector<std::string>& linearized,
                    const std::vector<std::string>& stuck, size_t total) {
  constexpr size_t kShown = 12;
  std::string out = "at most " + std::to_string(linearized.size()) + " of " +
                    std::to_string(total) +
                    " operations linearize; the longest prefix found ends with:";
  size_t from = linearized.size() > kShown ? linearized.size() - kShown : 0;
  if (from > 0) out += " ...";
  for (size_t i = from; i < linearized.size(); ++i) out += "\n  " + linearized[i];
  for (const auto& s : stuck) {
    out +=
        "\nafter which this completed operation fits nowhere (nor do the ones concurrent "
        "with it):\n  " +
        s;
  }
  return out;
}

}  // namespace internal
}  // namespace mentat::raft::testing
