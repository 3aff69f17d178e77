// Membership of a replicated control plane, with real processes and `mt` as an operator runs
// it: `mt cluster add` makes a fourth member a learner; started with --initial-cluster-state
// existing, it catches up and the leader makes it a voter; it takes writes; the leadership is
// handed to it (`mt cluster transfer-leader`); the old leader is removed (`mt cluster remove`)
// and the three left go on. Mistakes (a name taken, removing the leader, an unknown member) are
// refused with what to do.
#include <gtest/gtest.h>

#include "e2e/cluster_fixture.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

CommandResult Mt(const Member& via, std::vector<std::string> args) {
  args.insert(args.begin(), {Runfile("cmd/mt/mt"), "--server", "http://127.0.0.1:" + std::to_string(via.api)});
  return RunCommand(args);
}

// The member `name` in a cluster status, or null.
Json MemberIn(const Json& status, const std::string& name) {
  if (!status.is_object() || !status.contains("members")) return Json();
  for (const auto& m : status["members"]) {
    if (m.value("name", "") == name) return m;
  }
  return Json();
}

TEST_F(ClusterTest, AMemberAddedCatchesUpVotesLeadsAndTheOldLeaderIsRemoved) {
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Put(Named(leader), "before-" + std::to_string(i), i + 1), 201);

  Member n4{"n4", FreePort(), FreePort(), nullptr};
  const std::string peer4 = "127.0.0.1:" + std::to_string(n4.peer);
  auto add = Mt(Named(leader), {"cluster", "add", "n4", peer4});
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_TRUE(Has(add.out, "member n4 added as a learner")) << add.out;
  EXPECT_TRUE(Has(add.out, "--initial-cluster-state existing --initial-cluster n1=.*,n4=" + peer4)) << add.out;
  EXPECT_TRUE(Has(add.out, "n4 +127\\.0\\.0\\.1:[0-9]+ +learner +no")) << add.out;

  n4.process = std::make_unique<Process>(
      ServerArgv(n4.api, dir_ + "/n4",
                 {"--name", "n4", "--peer-listen", peer4, "--initial-cluster", initial_ + ",n4=" + peer4,
                  "--initial-cluster-state", "existing"}),
      dir_ + "/n4.log");
  members_.push_back(std::move(n4));
  Member& m4 = members_.back();
  ASSERT_TRUE(WaitFor([&] { return HttpGet(m4.api, "/healthz").first == 200; }, 15s)) << m4.process->Log();
  // It catches up, and the leader makes it a voter.
  EXPECT_TRUE(WaitFor([&] { return MemberIn(Status(Named(leader)), "n4").value("voter", false); }, 30s))
      << Status(Named(leader)).dump() << "\n" << m4.process->Log();
  EXPECT_TRUE(WaitFor([&] { return CountOn(m4, "before-4") == 5; }, 10s)) << m4.process->Log();
  ASSERT_EQ(Put(m4, "via-n4", 4), 201);
  for (auto& m : members_) EXPECT_TRUE(WaitFor([&] { return CountOn(m, "via-n4") == 4; }, 10s)) << m.name;

  // The leadership goes to n4; then the old leader can be removed.
  auto transfer = Mt(m4, {"cluster", "transfer-leader", "n4"});
  ASSERT_EQ(transfer.exit_code, 0) << transfer.err;
  EXPECT_TRUE(Has(transfer.out, "leader: n4")) << transfer.out;
  auto removed = Mt(m4, {"cluster", "remove", leader});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_FALSE(Has(removed.out, "\\n" + leader + " ")) << removed.out;
  Named(leader).process->Signal(SIGTERM);
  ASSERT_TRUE(Named(leader).process->Wait(10s).has_value());
  Named(leader).process.reset();
  // Three voters left: they take writes.
  ASSERT_EQ(Put(m4, "after-remove", 6), 201);
  for (auto& m : members_) {
    if (m.process) EXPECT_TRUE(WaitFor([&] { return CountOn(m, "after-remove") == 6; }, 10s)) << m.name;
  }
  EXPECT_EQ(Status(m4)["members"].size(), 3u) << Status(m4).dump();

  // Mistakes are refused with what to do.
  const std::string other = leader == "n2" ? "n3" : "n2";
  auto twice = Mt(m4, {"cluster", "add", other, "127.0.0.1:1"});
  EXPECT_NE(twice.exit_code, 0);
  EXPECT_TRUE(Has(twice.err, "member " + other + " is in the cluster already")) << twice.err;
  auto lead = Mt(m4, {"cluster", "remove", "n4"});
  EXPECT_NE(lead.exit_code, 0);
  EXPECT_TRUE(Has(lead.err, "n4 leads the cluster: hand the leadership to another member first")) << lead.err;
  auto nobody = Mt(m4, {"cluster", "remove", "n9"});
  EXPECT_NE(nobody.exit_code, 0);
  EXPECT_TRUE(Has(nobody.err, "no member n9")) << nobody.err;
  auto remote = Mt(m4, {"cluster", "add", "n5", "10.1.2.3:4648"});
  EXPECT_NE(remote.exit_code, 0);
  EXPECT_TRUE(Has(remote.err, "no peer TLS")) << remote.err;
}

}  // namespace
}  // namespace mentat::e2e
