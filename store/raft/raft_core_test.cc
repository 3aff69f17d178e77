// RaftCore against etcd's library itself: several nodes in one process, their messages routed
// in memory, each Ready persisted to a per-node "disk" the way the contract in raft_core.h
// says. Elections, replication, restart from what was persisted, a partitioned leader, a
// snapshot for a follower that fell behind, and a membership change.
#include "store/raft/raft_core.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <set>

namespace mentat::raft {
namespace {

struct Disk {
  PersistedRaftState state;
  std::map<uint64_t, std::string> entries;  // by index
  void Persist(const RaftReady& rd) {
    if (!rd.hard_state.empty()) state.hard_state = rd.hard_state;
    if (rd.snapshot) {
      state.snapshot = rd.snapshot->raw;
      entries.erase(entries.begin(), entries.upper_bound(rd.snapshot->index));
    }
    // A follower's new entries replace any it had from that index on.
    if (!rd.entries.empty()) entries.erase(entries.lower_bound(rd.entries.front().index), entries.end());
    for (const auto& e : rd.entries) entries[e.index] = e.raw;
  }
  PersistedRaftState Load() const {
    PersistedRaftState s = state;
    for (const auto& [i, raw] : entries) s.entries.push_back(raw);
    return s;
  }
};

struct Node {
  std::unique_ptr<RaftCore> core;
  Disk disk;
  std::map<uint64_t, std::string> applied;  // normal entries with data, by index
  std::vector<uint64_t> voters;
  std::optional<RaftSnapshotInfo> restored;  // the last snapshot it was given
  uint64_t lead = 0;
  RaftRole role = RaftRole::kFollower;
};

class Cluster {
 public:
  RaftConfig Config(uint64_t id) {
    RaftConfig c;
    c.id = id;
    return c;
  }
  void Bootstrap(std::vector<uint64_t> ids) {
    for (uint64_t id : ids) {
      auto core = RaftCore::Start(Config(id), {}, ids);
      ASSERT_TRUE(core) << core.error().message();
      nodes_[id].core = std::move(*core);
    }
  }
  // A node with an empty state that joins an existing cluster (added by a conf change).
  void StartEmpty(uint64_t id) {
    auto core = RaftCore::Start(Config(id), {});
    ASSERT_TRUE(core) << core.error().message();
    nodes_[id].core = std::move(*core);
  }
  void Crash(uint64_t id) { nodes_.at(id).core.reset(); }
  void Restart(uint64_t id) {
    Node& n = nodes_.at(id);
    auto core = RaftCore::Start(Config(id), n.disk.Load());
    ASSERT_TRUE(core) << core.error().message();
    n.core = std::move(*core);
    n.applied.clear();  // applied = 0: it applies its committed log again
  }
  void Isolate(uint64_t id) { isolated_.insert(id); }
  void Heal() { isolated_.clear(); }
  Node& at(uint64_t id) { return nodes_.at(id); }

  // One round: every live node ticks, drains its Readys, then every queued message arrives.
  void Round() {
    for (auto& [id, n] : nodes_) {
      if (n.core) n.core->Tick();
    }
    for (int i = 0; i < 4; ++i) {
      for (auto& [id, n] : nodes_) Drain(id, n);
      Deliver();
    }
  }
  bool RunUntil(const std::function<bool()>& done, int rounds = 500) {
    for (int i = 0; i < rounds; ++i) {
      if (done()) return true;
      Round();
    }
    return done();
  }
  uint64_t Leader() {
    for (auto& [id, n] : nodes_) {
      if (n.core && n.role == RaftRole::kLeader && !isolated_.count(id)) return id;
    }
    return 0;
  }

 private:
  void Drain(uint64_t id, Node& n) {
    if (!n.core) return;
    while (auto rd = n.core->Ready()) {
      if (rd->soft_state) std::tie(n.lead, n.role) = *rd->soft_state;
      n.disk.Persist(*rd);
      if (rd->snapshot) n.restored = rd->snapshot;
      for (auto& m : rd->messages) {
        if (!isolated_.count(id) && !isolated_.count(m.to)) queue_.push_back(std::move(m));
      }
      for (const auto& e : rd->committed) Apply(n, e);
      ASSERT_TRUE(n.core->Advance());
    }
  }
  void Apply(Node& n, const RaftEntry& e) {
    if (e.type == EntryType::kConfChange) {
      auto cc = n.core->ApplyConfChange(e.data);
      ASSERT_TRUE(cc) << cc.error().message();
      n.voters = cc->voters;
    } else if (!e.data.empty()) {
      n.applied[e.index] = e.data;
    }
  }
  void Deliver() {
    std::deque<RaftMessage> now;
    now.swap(queue_);
    for (auto& m : now) {
      auto it = nodes_.find(m.to);
      if (it == nodes_.end() || !it->second.core) continue;
      ASSERT_TRUE(it->second.core->Step(m.bytes));
      if (m.type == kMsgSnap) {
        // The snapshot's data (the caller's description) arrived with it: done.
        for (auto& [id, n] : nodes_) {
          if (n.core && n.role == RaftRole::kLeader) n.core->ReportSnapshot(m.to, false);
        }
      }
    }
  }

  std::map<uint64_t, Node> nodes_;
  std::deque<RaftMessage> queue_;
  std::set<uint64_t> isolated_;
};

TEST(RaftCore, ThreeNodesElectOneLeaderAndApplyTheSameEntriesAtTheSameIndexes) {
  Cluster c;
  c.Bootstrap({1, 2, 3});
  ASSERT_TRUE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  for (const char* v : {"a", "b", "c"}) ASSERT_TRUE(c.at(leader).core->Propose(v));
  ASSERT_TRUE(c.RunUntil([&] {
    for (uint64_t id : {1, 2, 3}) {
      if (c.at(id).applied.size() < 3) return false;
    }
    return true;
  }));
  EXPECT_EQ(c.at(1).applied, c.at(2).applied);
  EXPECT_EQ(c.at(1).applied, c.at(3).applied);
  std::vector<std::string> values;
  for (const auto& [i, v] : c.at(1).applied) values.push_back(v);
  EXPECT_EQ(values, (std::vector<std::string>{"a", "b", "c"}));
  Json st = c.at(leader).core->StatusJson();
  EXPECT_EQ(st.value("raftState", ""), "StateLeader") << st.dump();
  EXPECT_EQ(st.value("lead", ""), std::to_string(leader)) << st.dump();  // ids in hex: 1..3
  EXPECT_NE(c.at(leader).core->TakeLogs().find("became leader"), std::string::npos);
}

TEST(RaftCore, ANodeWithoutALeaderRefusesProposalsAsUnavailable) {
  Cluster c;
  c.Bootstrap({1, 2, 3});
  auto st = c.at(1).core->Propose("x");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kUnavailable) << st.error().message();
}

TEST(RaftCore, ACrashedFollowerRestartsFromWhatItPersistedAndCatchesUp) {
  Cluster c;
  c.Bootstrap({1, 2, 3});
  ASSERT_TRUE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  uint64_t follower = leader == 3 ? 2 : 3;
  ASSERT_TRUE(c.at(leader).core->Propose("before"));
  ASSERT_TRUE(c.RunUntil([&] { return c.at(follower).applied.size() == 1; }));
  c.Crash(follower);
  ASSERT_TRUE(c.at(leader).core->Propose("while-down"));
  ASSERT_TRUE(c.RunUntil([&] { return c.at(leader).applied.size() == 2; }));
  c.Restart(follower);
  ASSERT_TRUE(c.RunUntil([&] { return c.at(follower).applied.size() == 2; }));
  EXPECT_EQ(c.at(follower).applied, c.at(leader).applied);
}

TEST(RaftCore, AnIsolatedLeaderIsReplacedAndItsUncommittedProposalNeverApplies) {
  Cluster c;
  c.Bootstrap({1, 2, 3});
  ASSERT_TRUE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t old = c.Leader();
  uint64_t old_term = c.at(old).core->StatusJson().value("term", uint64_t{0});
  c.Isolate(old);
  ASSERT_TRUE(c.at(old).core->Propose("lost"));
  ASSERT_TRUE(c.RunUntil([&] { return c.Leader() != 0 && c.Leader() != old; }));
  uint64_t next = c.Leader();
  EXPECT_GT(c.at(next).core->StatusJson().value("term", uint64_t{0}), old_term);
  ASSERT_TRUE(c.at(next).core->Propose("kept"));
  c.Heal();
  ASSERT_TRUE(c.RunUntil([&] {
    for (uint64_t id : {1, 2, 3}) {
      if (c.at(id).applied.size() != 1) return false;
    }
    return true;
  }));
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(c.at(id).applied.begin()->second, "kept") << "node " << id;
  }
  // CheckQuorum: the isolated leader stepped down on its own.
  EXPECT_NE(c.at(old).role, RaftRole::kLeader);
}

TEST(RaftCore, AFollowerBehindACompactedLogGetsTheSnapshot) {
  Cluster c;
  c.Bootstrap({1, 2, 3});
  ASSERT_TRUE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  uint64_t behind = leader == 3 ? 2 : 3;
  c.Crash(behind);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.at(leader).core->Propose("v" + std::to_string(i)));
  ASSERT_TRUE(c.RunUntil([&] { return c.at(leader).applied.size() == 5; }));
  uint64_t last = c.at(leader).applied.rbegin()->first;
  auto snap = c.at(leader).core->Compact(last, "checkpoint@" + std::to_string(last));
  ASSERT_TRUE(snap) << snap.error().message();
  EXPECT_FALSE(snap->raw.empty());
  // Compacting again at or below it is refused, not a crash.
  auto again = c.at(leader).core->Compact(last - 1, "older");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kInvalidArgument) << again.error().message();
  c.Restart(behind);
  ASSERT_TRUE(c.RunUntil([&] { return c.at(behind).restored.has_value(); }));
  EXPECT_EQ(c.at(behind).restored->index, last);
  EXPECT_EQ(c.at(behind).restored->data, "checkpoint@" + std::to_string(last));
  // Entries after the snapshot still come through the log.
  ASSERT_TRUE(c.at(leader).core->Propose("after"));
  ASSERT_TRUE(c.RunUntil([&] {
    return !c.at(behind).applied.empty() && c.at(behind).applied.rbegin()->second == "after";
  }));
}

TEST(RaftCore, AMemberAddedAsALearnerThenAVoterAppliesTheLog) {
  Cluster c;
  c.Bootstrap({1});
  ASSERT_TRUE(c.RunUntil([&] { return c.Leader() == 1; }));
  ASSERT_TRUE(c.at(1).core->Propose("one"));
  c.StartEmpty(2);
  ASSERT_TRUE(c.at(1).core->ProposeConfChange(ConfChangeType::kAddLearner, 2, "http://127.0.0.1:5648"));
  ASSERT_TRUE(c.RunUntil([&] { return c.at(2).applied.size() == 1; }));
  EXPECT_EQ(c.at(1).voters, std::vector<uint64_t>{1});
  ASSERT_TRUE(c.at(1).core->ProposeConfChange(ConfChangeType::kAddVoter, 2, ""));
  ASSERT_TRUE(c.RunUntil([&] { return c.at(1).voters.size() == 2 && c.at(2).voters.size() == 2; }));
  ASSERT_TRUE(c.at(1).core->Propose("two"));
  ASSERT_TRUE(c.RunUntil([&] { return c.at(2).applied.size() == 2; }));
  EXPECT_EQ(c.at(2).applied, c.at(1).applied);
}

TEST(RaftCore, GarbageFromAPeerIsAnErrorNotACrash) {
  Cluster c;
  c.Bootstrap({1, 2, 3});
  auto st = c.at(1).core->Step(std::string("\xff\xff\xff\x01garbage", 11));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument) << st.error().message();
}

}  // namespace
}  // namespace mentat::raft
