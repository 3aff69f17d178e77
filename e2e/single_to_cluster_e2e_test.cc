// One voter is a valid cluster (seed 002): a single `--dev` server, started without
// --initial-cluster, is a Raft cluster of one. It takes its first write at once (the one voter
// campaigns without waiting out an election timeout); given a peer port (--peer-listen), `mt
// cluster add` grows it to three, each member started as `mt cluster add` says, and every
// member has every write; `mt cluster remove` shrinks it back to one, which goes on taking
// writes and restarts as that cluster of one. Without a peer port, `mt cluster add` is refused
// with what to do, and a restart with --peer-listen allows it.
#include <signal.h>

#include <gtest/gtest.h>

#include "e2e/cluster_fixture.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

class SingleToClusterTest : public ClusterTest {
 protected:
  // Starts n1 as a single --dev server, without --initial-cluster, with `flags`.
  void StartSingle(Member& m, const std::vector<std::string>& flags) {
    std::vector<std::string> extra = {"--dev", "--name", m.name};
    extra.insert(extra.end(), flags.begin(), flags.end());
    m.process = std::make_unique<Process>(ServerArgv(m.api, dir_ + "/" + m.name, extra), dir_ + "/" + m.name + ".log");
    ASSERT_TRUE(WaitFor([&] { return HttpGet(m.api, "/healthz").first == 200; }, 15s)) << m.process->Log();
  }
  void Stop(Member& m) {
    m.process->Signal(SIGTERM);
    ASSERT_TRUE(m.process->Wait(15s).has_value()) << m.process->Log();
    m.process.reset();
  }
  // Adds `m` through `via` and starts it as a member of `cluster`; it becomes a voter.
  void Add(const Member& via, Member& m, const std::vector<const Member*>& cluster) {
    auto added = Mt(via, {"cluster", "add", m.name, m.PeerAddress()});
    ASSERT_EQ(added.exit_code, 0) << added.err;
    ASSERT_TRUE(Has(added.out, "--initial-cluster-state existing --initial-cluster n1=" + cluster[0]->PeerAddress()))
        << added.out;
    StartIn(m, cluster, true);
    ASSERT_TRUE(BecomesVoter(via, m.name)) << Status(via).dump() << "\n" << m.process->Log();
  }
};

TEST_F(SingleToClusterTest, ASingleDevServerTakesWritesAtOnceGrowsToThreeAndShrinksBackToOne) {
  Member& n1 = members_[0];
  Member& n2 = members_[1];
  Member& n3 = members_[2];
  StartSingle(n1, {"--peer-listen", n1.PeerAddress()});
  // Its first write goes through at once once the API answers: no election timeout (1-2 s).
  const auto ready = std::chrono::steady_clock::now();
  ASSERT_EQ(Put(n1, "first", 1), 201) << n1.process->Log();
  const auto first_write = std::chrono::steady_clock::now() - ready;
  EXPECT_LT(first_write, 500ms) << "the first write took "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(first_write).count() << " ms";

  auto status = Mt(n1, {"cluster", "status", "-o", "json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  Json one = Json::parse(status.out, nullptr, false);
  ASSERT_EQ(one.value("leader", ""), "n1") << status.out;
  ASSERT_EQ(one["members"].size(), 1u) << status.out;
  EXPECT_EQ(one["members"][0]["role"], "leader");
  EXPECT_EQ(one["members"][0]["voter"], true);
  EXPECT_EQ(one["members"][0]["peerURL"], n1.PeerAddress());
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Put(n1, "alone-" + std::to_string(i), i + 1), 201);

  Add(n1, n2, {&n1, &n2});
  ASSERT_EQ(Put(n2, "via-n2", 2), 201);
  Add(n1, n3, {&n1, &n2, &n3});
  EXPECT_EQ(Status(n3)["members"].size(), 3u) << Status(n3).dump();
  ASSERT_EQ(Put(n3, "via-n3", 3), 201);
  for (auto* m : {&n1, &n2, &n3}) {
    EXPECT_EQ(CountOn(*m, "first"), 1) << m->name;
    for (int i = 0; i < 5; ++i) EXPECT_EQ(CountOn(*m, "alone-" + std::to_string(i)), i + 1) << m->name;
    EXPECT_EQ(CountOn(*m, "via-n2"), 2) << m->name;
    EXPECT_EQ(CountOn(*m, "via-n3"), 3) << m->name;
  }

  // Back to one: n1 keeps the leadership and removes the other two.
  auto transfer = Mt(n1, {"cluster", "transfer-leader", "n1"});
  ASSERT_EQ(transfer.exit_code, 0) << transfer.err;
  for (auto* m : {&n3, &n2}) {
    auto removed = Mt(n1, {"cluster", "remove", m->name});
    ASSERT_EQ(removed.exit_code, 0) << removed.err;
    Stop(*m);
  }
  Json back = Status(n1);
  ASSERT_EQ(back["members"].size(), 1u) << back.dump();
  EXPECT_EQ(back.value("leader", ""), "n1");
  ASSERT_EQ(Put(n1, "alone-again", 7), 201);

  // Restarted with the same command line, it is that cluster of one, with every write.
  Stop(n1);
  StartSingle(n1, {"--peer-listen", n1.PeerAddress()});
  ASSERT_EQ(Put(n1, "after-restart", 8), 201) << n1.process->Log();
  EXPECT_EQ(CountOn(n1, "alone-again"), 7);
  EXPECT_EQ(CountOn(n1, "via-n3"), 3);
  EXPECT_EQ(Status(n1)["members"].size(), 1u) << Status(n1).dump();
}

TEST_F(SingleToClusterTest, WithoutAPeerPortAddIsRefusedUntilRestartedWithOne) {
  Member& n1 = members_[0];
  Member& n2 = members_[1];
  StartSingle(n1, {});
  ASSERT_EQ(Put(n1, "before", 1), 201) << n1.process->Log();
  EXPECT_EQ(MemberIn(Status(n1), "n1").value("peerURL", "?"), "") << Status(n1).dump();
  auto refused = Mt(n1, {"cluster", "add", "n2", n2.PeerAddress()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(Has(refused.err, "n1 has no peer port .*restart it with --peer-listen HOST:PORT")) << refused.err;
  EXPECT_EQ(Status(n1)["members"].size(), 1u);

  Stop(n1);
  StartSingle(n1, {"--peer-listen", n1.PeerAddress()});
  EXPECT_EQ(MemberIn(Status(n1), "n1").value("peerURL", ""), n1.PeerAddress()) << Status(n1).dump();
  Add(n1, n2, {&n1, &n2});
  EXPECT_TRUE(WaitFor([&] { return CountOn(n2, "before") == 1; }, 10s)) << n2.process->Log();
  ASSERT_EQ(Put(n2, "after", 2), 201);
  EXPECT_TRUE(WaitFor([&] { return CountOn(n1, "after") == 2; }, 10s));
}

}  // namespace
}  // namespace mentat::e2e
