// The checker on hand-made histories: linearizable ones pass, known anomalies (a stale read, a
// lost write, two compare-and-sets that both win) fail, unknown outcomes may or may not have
// happened, and a 1,000-operation history is decided quickly, key by key.
#include "store/raft/testing/linearizability.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "store/raft/testing/kv_model.h"

namespace mentat::raft::testing {
namespace {

KvInput Get(std::string key) { return {KvOp::kGet, std::move(key), "", 0}; }
KvInput Put(std::string key, std::string v) {
  return {KvOp::kPut, std::move(key), std::move(v), 0};
}
KvInput Cas(std::string key, uint64_t expected, std::string v) {
  return {KvOp::kCas, std::move(key), std::move(v), expected};
}
KvInput Del(std::string key) { return {KvOp::kDelete, std::move(key), "", 0}; }

KvOutput Found(std::string v, uint64_t version) { return {true, std::move(v), version}; }
KvOutput Absent() { return {false, "", 0}; }
KvOutput Wrote(uint64_t version) { return {true, "", version}; }
KvOutput Refused(uint64_t version) { return {false, "", version}; }

KvOperation Op(int client, KvInput in, std::optional<KvOutput> out, uint64_t call, uint64_t ret) {
  return {client, std::move(in), std::move(out), call, ret};
}

Verdict Check(const std::vector<KvOperation>& h) {
  auto r = CheckLinearizable(KvModel(), h);
  if (r.verdict != Verdict::kLinearizable) {
    std::cerr << VerdictName(r.verdict) << " on key " << r.partition << ": " << r.explanation
              << "\n";
  }
  return r.verdict;
}

TEST(Linearizability, SequentialOperationsThatMatchTheModelPass) {
  EXPECT_EQ(
      Check({Op(0, Put("x", "1"), Wrote(1), 1, 2), Op(0, Get("x"), Found("1", 1), 3, 4),
             Op(0, Cas("x", 1, "2"), Wrote(2), 5, 6), Op(0, Cas("x", 1, "3"), Refused(2), 7, 8),
             Op(0, Del("x"), Wrote(0), 9, 10), Op(0, Get("x"), Absent(), 11, 12)}),
      Verdict::kLinearizable);
}

TEST(Linearizability, AReadConcurrentWithAWriteMaySeeEitherValue) {
  std::vector<KvOperation> base = {Op(0, Put("x", "1"), Wrote(1), 1, 2),
                                   Op(1, Put("x", "2"), Wrote(2), 3, 10)};
  auto old_value = base, new_value = base;
  old_value.push_back(Op(2, Get("x"), Found("1", 1), 4, 5));
  new_value.push_back(Op(2, Get("x"), Found("2", 2), 4, 5));
  EXPECT_EQ(Check(old_value), Verdict::kLinearizable);
  EXPECT_EQ(Check(new_value), Verdict::kLinearizable);
}

TEST(Linearizability, AStaleReadAfterAnAcknowledgedWriteFails) {
  EXPECT_EQ(Check({Op(0, Put("x", "1"), Wrote(1), 1, 2), Op(1, Put("x", "2"), Wrote(2), 3, 4),
                   Op(2, Get("x"), Found("1", 1), 5, 6)}),
            Verdict::kNotLinearizable);
}

TEST(Linearizability, ReadsThatGoBackInTimeFail) {
  // Each read alone could be concurrent with the write; both together cannot.
  EXPECT_EQ(Check({Op(0, Put("x", "1"), Wrote(1), 1, 20), Op(1, Get("x"), Found("1", 1), 2, 3),
                   Op(2, Get("x"), Absent(), 4, 5)}),
            Verdict::kNotLinearizable);
}

TEST(Linearizability, ALostWriteFails) {
  EXPECT_EQ(Check({Op(0, Put("x", "1"), Wrote(1), 1, 2), Op(1, Get("x"), Absent(), 3, 4)}),
            Verdict::kNotLinearizable);
}

TEST(Linearizability, TwoCompareAndSetsOnTheSameVersionCannotBothWin) {
  EXPECT_EQ(Check({Op(0, Put("x", "0"), Wrote(1), 1, 2), Op(1, Cas("x", 1, "a"), Wrote(2), 3, 6),
                   Op(2, Cas("x", 1, "b"), Wrote(2), 4, 5)}),
            Verdict::kNotLinearizable);
  // One wins, one loses: fine, whichever order.
  EXPECT_EQ(Check({Op(0, Put("x", "0"), Wrote(1), 1, 2), Op(1, Cas("x", 1, "a"), Refused(2), 3, 6),
                   Op(2, Cas("x", 1, "b"), Wrote(2), 4, 5), Op(0, Get("x"), Found("b", 2), 7, 8)}),
            Verdict::kLinearizable);
}

TEST(Linearizability, AWrongVersionFails) {
  EXPECT_EQ(Check({Op(0, Put("x", "1"), Wrote(1), 1, 2), Op(0, Put("x", "2"), Wrote(1), 3, 4)}),
            Verdict::kNotLinearizable);
}

TEST(Linearizability, AWriteOfUnknownOutcomeMayHappenLateOrNever) {
  const auto unknown = Op(0, Put("x", "1"), std::nullopt, 1, 0);
  EXPECT_EQ(Check({unknown, Op(1, Get("x"), Absent(), 5, 6)}), Verdict::kLinearizable);
  EXPECT_EQ(Check({unknown, Op(1, Get("x"), Found("1", 1), 5, 6)}), Verdict::kLinearizable);
  // Late: absent, then there (long after the client gave up).
  EXPECT_EQ(
      Check({unknown, Op(1, Get("x"), Absent(), 5, 6), Op(1, Get("x"), Found("1", 1), 50, 51)}),
      Verdict::kLinearizable);
  // But once seen it cannot be undone.
  EXPECT_EQ(Check({unknown, Op(1, Get("x"), Found("1", 1), 5, 6), Op(1, Get("x"), Absent(), 7, 8)}),
            Verdict::kNotLinearizable);
  // And it cannot take effect before it was called.
  EXPECT_EQ(Check({Op(1, Get("x"), Found("1", 1), 1, 2), Op(0, Put("x", "1"), std::nullopt, 3, 0)}),
            Verdict::kNotLinearizable);
}

TEST(Linearizability, TheReportNamesTheKeyAndTheOperationThatDoesNotFit) {
  auto r = CheckLinearizable(KvModel(), std::vector<KvOperation>{
                                            Op(0, Put("a", "1"), Wrote(1), 1, 2),
                                            Op(0, Put("b", "1"), Wrote(1), 3, 4),
                                            Op(1, Get("b"), Absent(), 5, 6),
                                        });
  ASSERT_EQ(r.verdict, Verdict::kNotLinearizable);
  EXPECT_EQ(r.partition, "b");
  EXPECT_NE(r.explanation.find("get(b) -> absent"), std::string::npos) << r.explanation;
}

TEST(Linearizability, AGenericModelWithoutPartitionsWorks) {
  // A counter: add(n) returns the new total.
  Model<int, int, int> counter;
  counter.init = 0;
  counter.step = [](const int& s, const int& add,
                    const std::optional<int>& out) -> std::optional<int> {
    if (out && *out != s + add) return std::nullopt;
    return s + add;
  };
  using CounterOp = Operation<int, int>;
  EXPECT_EQ(
      CheckLinearizable(counter, std::vector<CounterOp>{{0, 1, 3, 1, 10}, {1, 2, 2, 2, 9}}).verdict,
      Verdict::kLinearizable);
  EXPECT_EQ(
      CheckLinearizable(counter, std::vector<CounterOp>{{0, 1, 1, 1, 2}, {1, 2, 2, 3, 4}}).verdict,
      Verdict::kNotLinearizable);
}

// A history of `n` operations by `clients` clients over `keys` keys that a real store produced:
// each operation takes effect at a random instant inside its interval. Some outcomes are lost.
std::vector<KvOperation> RandomLinearizableHistory(uint64_t seed, int n, int clients, int keys) {
  std::mt19937_64 rng(seed);
  std::map<std::string, KvState> store;
  struct Pending {
    KvOperation op;
    uint64_t effect_at;
  };
  std::vector<std::optional<Pending>> busy(clients);
  std::vector<uint64_t> free_at(clients, 0);  // a client has one operation at a time
  std::vector<KvOperation> out;
  uint64_t now = 0;
  int issued = 0;
  while (issued < n ||
         std::any_of(busy.begin(), busy.end(), [](auto& b) { return b.has_value(); })) {
    ++now;
    int c = static_cast<int>(rng() % clients);
    if (!busy[c] && issued < n && now > free_at[c]) {
      std::string key = "k" + std::to_string(rng() % keys);
      KvInput in;
      switch (rng() % 4) {
        case 0:
          in = Get(key);
          break;
        case 1:
          in = Put(key, std::to_string(issued));
          break;
        case 2:
          in = Cas(key, store[key].version, std::to_string(issued));
          break;
        default:
          in = Del(key);
          break;
      }
      busy[c] = Pending{Op(c, in, std::nullopt, now, 0), now + 1 + rng() % 8};
      ++issued;
    } else if (busy[c] && busy[c]->effect_at <= now) {
      auto& op = busy[c]->op;
      auto [next, answer] = ApplyKv(store[op.input.key], op.input);
      store[op.input.key] = next;
      op.ret = now + 1 + rng() % 8;
      if (rng() % 20 != 0) op.output = answer;  // 1 in 20: the client never heard back
      free_at[c] = op.ret;
      out.push_back(op);
      busy[c].reset();
    }
  }
  return out;
}

TEST(Linearizability, AThousandOperationsOverTenKeysAreDecidedWithinBudget) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    auto h = RandomLinearizableHistory(seed, 1000, 6, 10);
    auto r = CheckLinearizable(KvModel(), h, {.max_steps = 2'000'000});
    EXPECT_EQ(r.verdict, Verdict::kLinearizable) << "seed " << seed << ": " << r.explanation;
    // One read made stale breaks it.
    for (auto& op : h) {
      if (op.input.op == KvOp::kGet && op.output && op.output->ok) {
        op.output->value += "-stale";
        break;
      }
    }
    EXPECT_EQ(CheckLinearizable(KvModel(), h, {.max_steps = 2'000'000}).verdict,
              Verdict::kNotLinearizable)
        << "seed " << seed;
  }
}

TEST(Linearizability, ASearchOverBudgetSaysUnknownRatherThanHang) {
  // Forty concurrent writes and a read that matches none of them: proving it wrong means trying
  // every order the cache cannot fold, far more than ten thousand steps.
  std::vector<KvOperation> h;
  for (int i = 0; i < 40; ++i) h.push_back(Op(i, Put("x", std::to_string(i)), std::nullopt, 1, 0));
  h.push_back(Op(99, Get("x"), Found("none", 7), 2, 3));
  auto r = CheckLinearizable(KvModel(), h, {.max_steps = 10'000});
  EXPECT_EQ(r.verdict, Verdict::kUnknown) << r.explanation;
}

}  // namespace
}  // namespace mentat::raft::testing
