// The Store contract through a three-member replicated store (testing/members.h), each member's
// ReplicatedStore taking writes: metadata and generation as on one node, conditional writes and
// their conflicts, racing unconditional writes that all land (decided again when another changed
// what they read), racing conditional ones that never both win, transactions and dry runs,
// finalizers, a follower that lags reading and deciding only after catching up, and a watch on
// one member that sees every member's writes, in order, with the revisions every member gives
// them.
#include "store/raft/replicated_store.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "store/raft/testing/members.h"
#include "store/raft/testing/objects.h"

namespace mentat::raft {
namespace {

using namespace std::chrono_literals;

using testing::Svc;

class ReplicatedStoreTest : public testing::Members {
 protected:
  void SetUp() override {
    StartCluster(3);
    ASSERT_NE(WaitLeader(), 0u);
    for (uint64_t id : peers_) stores_[id] = std::make_unique<ReplicatedStore>(*states_[id], *nodes_[id]);
  }
  void TearDown() override {
    stores_.clear();
    Members::TearDown();
  }
  Store& on(uint64_t id) { return *stores_.at(id); }
  void Settle() { ASSERT_TRUE(Settled()); }

  std::map<uint64_t, std::unique_ptr<ReplicatedStore>> stores_;
};

TEST_F(ReplicatedStoreTest, WritesOnAnyMemberKeepTheObjectRulesAndReadTheSameEverywhere) {
  auto created = on(2).Put(Svc("web", 1));
  ASSERT_TRUE(created) << created.error().message();
  EXPECT_EQ((*created)["metadata"]["generation"], 1);
  EXPECT_FALSE((*created)["metadata"].value("uid", "").empty());
  auto scaled = on(3).Put(Svc("web", 2));
  ASSERT_TRUE(scaled) << scaled.error().message();
  EXPECT_EQ((*scaled)["metadata"]["generation"], 2);
  EXPECT_EQ((*scaled)["metadata"]["uid"], (*created)["metadata"]["uid"]);
  EXPECT_GT(ResourceVersionOf(*scaled), ResourceVersionOf(*created));
  auto same = on(1).Put(Svc("web", 2));  // nothing changes: no write, no revision
  ASSERT_TRUE(same);
  EXPECT_EQ(ResourceVersionOf(*same), ResourceVersionOf(*scaled));
  Settle();
  for (uint64_t id : {1, 2, 3}) {
    auto got = on(id).Get({"Service", "default", "web"});
    ASSERT_TRUE(got) << "member " << id;
    EXPECT_EQ(*got, *scaled) << "member " << id;
    EXPECT_EQ(on(id).CurrentRevision(), on(3).CurrentRevision());
  }
}

TEST_F(ReplicatedStoreTest, AConditionalWriteOnAStaleVersionIsAConflict) {
  auto v1 = on(1).Put(Svc("web", 1));
  ASSERT_TRUE(v1);
  ASSERT_TRUE(on(2).Put(Svc("web", 2)));
  Settle();
  WriteOptions cond;
  cond.expected_revision = ResourceVersionOf(*v1);
  auto stale = on(3).Put(Svc("web", 3), cond);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), Code::kConflict) << stale.error().message();
  WriteOptions create_only;
  create_only.create_only = true;
  auto again = on(1).Put(Svc("web", 4), create_only);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists) << again.error().message();
}

TEST_F(ReplicatedStoreTest, RacingWritesFromEveryMemberAllLandOrConflictAsTheirConditionsSay) {
  ASSERT_TRUE(on(1).Put(Svc("counter", 0)));
  Settle();
  // Unconditional status writes to one object from three members at once: each lands (those
  // whose decision went stale are decided again), none is lost.
  std::vector<std::thread> writers;
  std::atomic<int> ok{0};
  for (uint64_t id : {1, 2, 3}) {
    writers.emplace_back([&, id] {
      for (int i = 0; i < 5; ++i) {
        Json s = Svc("counter", 0);
        s["status"] = {{"by", id}, {"i", i}};
        auto r = on(id).UpdateStatus(s);
        if (r) ++ok;
        else ADD_FAILURE() << "member " << id << ": " << r.error().message();
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(ok.load(), 15);
  // Conditional writes on one version from three members at once: exactly one wins.
  Settle();  // every member holds the last version
  auto base = on(1).Get({"Service", "default", "counter"});
  ASSERT_TRUE(base);
  WriteOptions cond;
  cond.expected_revision = ResourceVersionOf(*base);
  std::atomic<int> won{0}, conflicts{0};
  writers.clear();
  for (uint64_t id : {1, 2, 3}) {
    writers.emplace_back([&, id] {
      auto r = on(id).Put(Svc("counter", static_cast<int>(id)), cond);
      if (r) ++won;
      if (!r && r.error().code() == Code::kConflict) ++conflicts;
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(conflicts.load(), 2);
}

TEST_F(ReplicatedStoreTest, ATransactionIsAllOrNothingAndADryRunWritesNothing) {
  int64_t before = on(1).CurrentRevision();
  auto dry = on(2).Txn({Svc("a", 1), Svc("b", 1)}, /*dry_run=*/true);
  ASSERT_TRUE(dry) << dry.error().message();
  EXPECT_EQ(dry->size(), 2u);
  EXPECT_EQ(on(2).CurrentRevision(), before);
  auto txn = on(2).Txn({Svc("a", 1), Svc("b", 1)}, false);
  ASSERT_TRUE(txn) << txn.error().message();
  ASSERT_EQ(txn->size(), 2u);
  EXPECT_EQ((*txn)[0].action, TxnResult::kCreated);
  EXPECT_EQ(ResourceVersionOf((*txn)[1].object), ResourceVersionOf((*txn)[0].object) + 1);
  // One put's condition fails: nothing of it is written.
  Json stale = Svc("a", 5);
  stale["metadata"]["resourceVersion"] = "12345";
  int64_t at = on(2).CurrentRevision();
  auto failed = on(3).Txn({Svc("c", 1), stale}, false);
  ASSERT_FALSE(failed);
  Settle();
  EXPECT_EQ(on(3).CurrentRevision(), at);
  EXPECT_FALSE(on(3).Get({"Service", "default", "c"}));
}

TEST_F(ReplicatedStoreTest, FinalizersHoldADeleteOnEveryMember) {
  Json svc = Svc("held", 1);
  svc["metadata"]["finalizers"] = {"mentat.io/cleanup"};
  ASSERT_TRUE(on(1).Put(svc));
  auto marked = on(2).Delete({"Service", "default", "held"});
  ASSERT_TRUE(marked) << marked.error().message();
  EXPECT_TRUE((*marked)["metadata"].contains("deletionTimestamp"));
  Json released = *marked;
  released["metadata"]["finalizers"] = Json::array();
  auto put = on(3).Put(released);
  ASSERT_TRUE(put) << put.error().message();
  Settle();
  for (uint64_t id : {1, 2, 3}) EXPECT_FALSE(on(id).Get({"Service", "default", "held"})) << id;
}

// A follower that has not yet heard of a write acknowledged elsewhere: Loopback holds the
// leader's messages to it until it has asked for a read barrier, then delivers them.
TEST_F(ReplicatedStoreTest, ALaggingFollowerReadsAndDecidesOnlyAfterCatchingUp) {
  const uint64_t leader = WaitLeader();
  const uint64_t lagging = leader == 3 ? 2 : 3;
  // It knows the leader (a follower that does not cannot ask it anything) but no more.
  ASSERT_TRUE(testing::WaitFor([&] { return nodes_[lagging]->Leader() == leader; }, 5s));
  auto lagged = [&](const std::string& name, auto op) {
    transport_.Hold(lagging);
    Json svc = Svc(name, 1);
    svc["metadata"]["finalizers"] = {"mentat.io/cleanup"};
    EXPECT_TRUE(on(leader).Put(svc));
    auto own = states_[lagging]->Find({"Service", "default", name});
    EXPECT_TRUE(own && !own->has_value()) << "the follower already had " << name;
    const int asked = transport_.Sent(testing::kMsgReadIndex);
    auto result = std::async(std::launch::async, op);
    EXPECT_TRUE(testing::WaitFor([&] { return transport_.Sent(testing::kMsgReadIndex) > asked; }, 5s))
        << "the follower answered from its own state without asking the leader";
    transport_.Release(lagging);
    return result.get();
  };
  auto got = lagged("read", [&] { return on(lagging).Get({"Service", "default", "read"}); });
  EXPECT_TRUE(got) << got.error().message();
  auto marked = lagged("deleted", [&] { return on(lagging).Delete({"Service", "default", "deleted"}); });
  ASSERT_TRUE(marked) << marked.error().message();
  EXPECT_TRUE((*marked)["metadata"].contains("deletionTimestamp"));
}

TEST_F(ReplicatedStoreTest, AWatchOnOneMemberSeesEveryMembersWritesInOrder) {
  auto w = on(3).Watch("Service", 0);
  ASSERT_TRUE(w) << w.error().message();
  std::vector<int64_t> written;
  for (uint64_t id : {1, 2, 3, 1, 2}) {
    auto r = on(id).Put(Svc("w" + std::to_string(written.size()), 1));
    ASSERT_TRUE(r) << r.error().message();
    written.push_back(ResourceVersionOf(*r));
  }
  std::vector<int64_t> seen;
  while (seen.size() < written.size()) {
    auto ev = (*w)->Next(5s);
    ASSERT_TRUE(ev && ev->has_value()) << "saw " << seen.size() << " of " << written.size();
    seen.push_back((**ev)->revision);
  }
  EXPECT_EQ(seen, written);
  // A watch resumed on another member from the same revision gives the same events.
  auto resumed = on(1).Watch("Service", written[1]);
  ASSERT_TRUE(resumed);
  std::vector<int64_t> again;
  while (again.size() < 3) {
    auto ev = (*resumed)->Next(5s);
    ASSERT_TRUE(ev && ev->has_value());
    again.push_back((**ev)->revision);
  }
  EXPECT_EQ(again, std::vector<int64_t>(written.begin() + 2, written.end()));
}

}  // namespace
}  // namespace mentat::raft
