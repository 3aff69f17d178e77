// Membership of a replicated control plane, with real processes and `mt` as an operator runs
// it: `mt cluster add` makes a fourth member a learner; started with --initial-cluster-state
// existing, it catches up and the leader makes it a voter; it takes writes; the leadership is
// handed to it (`mt cluster transfer-leader`); the old leader is removed (`mt cluster remove`)
// and the three left go on. Mistakes (a name taken, removing the leader, an unknown member) are
// refused with what to do. A cluster of one grows to three, replaces a dead member and shrinks
// back to one while a load of writes goes on, and loses none. After a majority is lost,
// --force-new-cluster makes the survivor a cluster of one with every acknowledged write. A
// snapshot saved through a member restores into a new cluster of one. A member removed while it
// runs learns it and stops taking part.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "e2e/cluster_fixture.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

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

// How many elections `log` says its member started (etcd's "is starting a new election").
int Elections(const std::string& log) {
  int n = 0;
  for (size_t at = log.find("starting a new election"); at != std::string::npos;
       at = log.find("starting a new election", at + 1)) {
    ++n;
  }
  return n;
}

// A member removed while it runs learns it (from its own log, or from the members, which refuse
// it as removed, as etcd's removed member hears ErrMemberRemoved): it says so in its log, its
// /healthz answers 503 and /v1/cluster calls it removed, it refuses writes at once with the
// reason, and it disturbs nobody (no elections, the others' term stays). Restarted from its
// data, it knows it again.
TEST_F(ClusterTest, ARemovedMemberLearnsItWasRemovedAndStopsTakingPart) {
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  Member& gone = Named(leader == "n3" ? "n2" : "n3");
  ASSERT_EQ(Put(Named(leader), "before", 1), 201);
  auto removed = Mt(Named(leader), {"cluster", "remove", gone.name});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  const int64_t term = Status(Named(leader)).value("term", int64_t{0});

  auto refused_as_removed = [&](const std::string& probe) {
    auto [code, body] = HttpGet(gone.api, probe);
    return code == 503 && Has(body, "member " + gone.name + " was removed from the cluster");
  };
  ASSERT_TRUE(WaitFor([&] { return refused_as_removed("/healthz"); }, 15s))
      << HttpGet(gone.api, "/healthz").second << "\n"
      << gone.process->Log();
  EXPECT_TRUE(refused_as_removed("/readyz"));
  EXPECT_TRUE(
      Has(gone.process->Log(), "cluster member " + gone.name + " was removed from the cluster \\("))
      << gone.process->Log();
  const Json self = MemberIn(Status(gone), gone.name);
  EXPECT_EQ(self.value("role", ""), "removed") << Status(gone).dump();
  EXPECT_FALSE(self.value("healthy", true)) << self.dump();
  auto status = Mt(gone, {"cluster", "status"});
  EXPECT_TRUE(
      Has(status.out, gone.name + ": member " + gone.name + " was removed from the cluster"))
      << status.out;

  // A write through it is refused at once, with the reason, and never made.
  httplib::Client cli("127.0.0.1", gone.api);
  const auto start = std::chrono::steady_clock::now();
  auto put = cli.Put("/v1/services/refused", "name: refused\ndriver: exec\ncommand: /bin/true\n",
                     "application/yaml");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 503) << put->body;
  EXPECT_TRUE(Has(put->body, "was removed from the cluster: it takes no writes")) << put->body;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(gone.process->Running());

  // It starts no election over more than an election timeout (1-2 s), and the two others go on
  // at their term.
  const int elections = Elections(gone.process->Log());
  EXPECT_FALSE(WaitFor([&] { return Elections(gone.process->Log()) > elections; }, 3s))
      << gone.process->Log();
  ASSERT_EQ(Put(Named(leader), "after", 2), 201);
  EXPECT_EQ(Status(Named(leader)).value("term", int64_t{0}), term);
  EXPECT_EQ(Status(Named(leader))["members"].size(), 2u) << Status(Named(leader)).dump();
  EXPECT_EQ(HttpGet(Named(leader).api, "/v1/services/refused").first, 404);

  // Restarted from its data, it knows again that it was removed.
  gone.process->Signal(SIGTERM);
  ASSERT_TRUE(gone.process->Wait(15s).has_value()) << gone.process->Log();
  gone.process = std::make_unique<Process>(Argv(gone), dir_ + "/" + gone.name + "-again.log");
  EXPECT_TRUE(WaitFor([&] { return refused_as_removed("/healthz"); }, 15s))
      << HttpGet(gone.api, "/healthz").second << "\n"
      << gone.process->Log();
  EXPECT_EQ(Status(Named(leader)).value("term", int64_t{0}), term);
}

TEST_F(ClusterTest, AClusterOfOneGrowsToThreeReplacesADeadMemberAndShrinksBackWhileWritesGoOn) {
  Member& n1 = members_[0];
  Member& n2 = members_[1];
  Member& n3 = members_[2];
  Member n4{"n4", FreePort(), FreePort(), nullptr};
  StartIn(n1, {&n1}, false);
  ASSERT_EQ(AgreedLeaderOf({"n1"}), "n1");
  // A load through n1 all along: every write acknowledged must be there at the end.
  std::atomic<bool> stop{false};
  std::vector<int> acknowledged;
  std::thread load([&] {
    for (int i = 0; !stop; ++i) {
      if (Put(n1, "load-" + std::to_string(i), i + 1) == 201) acknowledged.push_back(i);
    }
  });
  auto add = [&](Member& m, const std::vector<const Member*>& cluster) {
    auto added = Mt(n1, {"cluster", "add", m.name, "127.0.0.1:" + std::to_string(m.peer)});
    ASSERT_EQ(added.exit_code, 0) << added.err;
    StartIn(m, cluster, true);
    EXPECT_TRUE(BecomesVoter(n1, m.name)) << Status(n1).dump() << "\n" << m.process->Log();
  };
  add(n2, {&n1, &n2});
  add(n3, {&n1, &n2, &n3});
  EXPECT_EQ(Status(n1)["members"].size(), 3u);
  // n3 dies for good: it is removed and n4 takes its place.
  n3.process->Signal(SIGKILL);
  ASSERT_TRUE(n3.process->Wait(10s).has_value());
  n3.process.reset();
  auto removed = Mt(n1, {"cluster", "remove", "n3"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  add(n4, {&n1, &n2, &n4});
  EXPECT_EQ(Status(n1)["members"].size(), 3u) << Status(n1).dump();
  for (auto* m : {&n4, &n2}) {
    auto removed = Mt(n1, {"cluster", "remove", m->name});
    ASSERT_EQ(removed.exit_code, 0) << removed.err;
    m->process.reset();
  }
  EXPECT_EQ(Status(n1)["members"].size(), 1u) << Status(n1).dump();
  stop = true;
  load.join();
  ASSERT_GT(acknowledged.size(), 10u);
  for (int i : acknowledged) ASSERT_EQ(CountOn(n1, "load-" + std::to_string(i)), i + 1) << i;
  // One voter again: it takes writes alone.
  EXPECT_EQ(Put(n1, "alone-again", 1), 201);
}

TEST_F(ClusterTest, AfterAMajorityIsLostForceNewClusterMakesTheSurvivorACluster) {
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  for (int i = 0; i < 20; ++i) ASSERT_EQ(Put(Named(leader), "kept-" + std::to_string(i), i + 1), 201);
  // Two members are lost for good; the survivor alone has no quorum.
  Member& survivor = Named(leader == "n1" ? "n2" : "n1");
  for (auto& m : members_) {
    if (m.name == survivor.name) continue;
    m.process->Signal(SIGKILL);
    ASSERT_TRUE(m.process->Wait(10s).has_value());
    m.process.reset();
  }
  survivor.process->Signal(SIGTERM);
  ASSERT_TRUE(survivor.process->Wait(15s).has_value());
  extra_ = {"--force-new-cluster"};
  Start(survivor);
  ASSERT_EQ(AgreedLeaderOf({survivor.name}), survivor.name) << survivor.process->Log();
  EXPECT_TRUE(Has(survivor.process->Log(), "--force-new-cluster: member " + survivor.name + " is now a cluster of one"))
      << survivor.process->Log();
  Json status = Status(survivor);
  ASSERT_EQ(status["members"].size(), 1u) << status.dump();
  // Every write the old cluster acknowledged is there, and the cluster of one takes more.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(CountOn(survivor, "kept-" + std::to_string(i)), i + 1) << i;
  EXPECT_EQ(Put(survivor, "after-force", 3), 201);
  // Restarted without the flag, it goes on as that cluster of one.
  survivor.process.reset();
  extra_.clear();
  Start(survivor);
  ASSERT_EQ(AgreedLeaderOf({survivor.name}), survivor.name) << survivor.process->Log();
  EXPECT_EQ(CountOn(survivor, "after-force"), 3);
  EXPECT_EQ(Put(survivor, "after-restart", 4), 201);
}

TEST_F(ClusterTest, ASnapshotSavedFromAMemberRestoresIntoANewClusterOfOne) {
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Put(Named(leader), "saved-" + std::to_string(i), i + 1), 201);
  // Saved through a follower, as an operator's `mt snapshot save` may land anywhere.
  Member& follower = Named(leader == "n1" ? "n2" : "n1");
  const std::string file = dir_ + "/backup.snap";
  auto save = Mt(follower, {"snapshot", "save", file});
  ASSERT_EQ(save.exit_code, 0) << save.err;
  EXPECT_TRUE(Has(save.out, "snapshot of [0-9]+ objects at revision [0-9]+ saved")) << save.out;
  auto restore = RunCommand({Runfile("cmd/mentat-server/mentat-server"), "--restore", file, "--data-dir",
                             dir_ + "/restored"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  for (auto& m : members_) m.process.reset();
  // The restored store started as a cluster of one has every object and takes writes.
  Member one{"r1", FreePort(), FreePort(), nullptr};
  const std::string peer = "127.0.0.1:" + std::to_string(one.peer);
  one.process = std::make_unique<Process>(
      ServerArgv(one.api, dir_ + "/restored", {"--name", "r1", "--peer-listen", peer, "--initial-cluster", "r1=" + peer}),
      dir_ + "/r1.log");
  ASSERT_TRUE(WaitFor([&] { return HttpGet(one.api, "/healthz").first == 200; }, 15s)) << one.process->Log();
  ASSERT_TRUE(WaitFor([&] { return Status(one).value("leader", "") == "r1"; }, 15s)) << one.process->Log();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(CountOn(one, "saved-" + std::to_string(i)), i + 1) << i;
  EXPECT_EQ(Put(one, "after-restore", 2), 201);
}

}  // namespace
}  // namespace mentat::e2e
