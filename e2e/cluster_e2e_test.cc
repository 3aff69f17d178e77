// Three mentat-server processes as one replicated control plane on 127.0.0.1 (--name,
// --peer-listen, --initial-cluster): a write on any member reads back from every member;
// GET /v1/cluster and `mt cluster status` agree on one leader; the leader kill -9'd, the other
// two elect another and go on taking writes, and no acknowledged write is lost; the killed
// member, restarted from its disk, catches up; mt given every member's address goes on past the
// dead one. The leader makes the built-in security profiles.
// A member without a quorum answers 503 in bounded time. Cluster flags that cannot work are
// refused.
#include <signal.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <map>
#include <set>
#include <memory>

#include "e2e/cluster_fixture.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;


TEST_F(ClusterTest, WritesOnAnyMemberReadEverywhereAndSurviveTheLeadersKill) {
  for (auto& m : members_) Start(m);
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty()) << "no agreed leader:\n" << members_[0].process->Log();

  // /v1/cluster: three voters, one leader, every member healthy once the links are up.
  Json status = Status(members_[0]);
  ASSERT_EQ(status["members"].size(), 3u) << status.dump();
  int leaders = 0;
  for (const auto& m : status["members"]) {
    EXPECT_TRUE(m["voter"].get<bool>()) << m.dump();
    if (m["role"] == "leader") ++leaders;
  }
  EXPECT_EQ(leaders, 1) << status.dump();
  EXPECT_GT(status["term"].get<int>(), 0);
  EXPECT_TRUE(WaitFor([&] {
    Json s = Status(members_[0]);
    for (const auto& m : s["members"]) {
      if (!m["healthy"].get<bool>()) return false;
    }
    return true;
  }, 10s)) << Status(members_[0]).dump();

  // `mt cluster status` as an operator runs it, against a follower.
  const Member& follower = leader == "n1" ? members_[1] : members_[0];
  auto mt = RunCommand({Runfile("cmd/mt/mt"), "--server", "http://127.0.0.1:" + std::to_string(follower.api),
                        "cluster", "status"});
  ASSERT_EQ(mt.exit_code, 0) << mt.err;
  EXPECT_TRUE(Has(mt.out, "leader: " + leader)) << mt.out;
  EXPECT_TRUE(Has(mt.out, "NAME +PEER +ROLE +VOTER +APPLIED +HEALTHY")) << mt.out;
  EXPECT_TRUE(Has(mt.out, "\\n" + leader + " +127\\.0\\.0\\.1:[0-9]+ +leader +yes")) << mt.out;
  auto json = RunCommand({Runfile("cmd/mt/mt"), "--server", "http://127.0.0.1:" + std::to_string(follower.api),
                          "cluster", "status", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(Json::parse(json.out, nullptr, false)["leader"], leader) << json.out;

  // The leader made the built-in security profiles; every member has them.
  for (auto& m : members_) {
    EXPECT_TRUE(WaitFor([&] { return HttpGet(m.api, "/v1/securityprofiles/exec-restricted").first == 200; }, 10s))
        << m.name;
  }

  // A write through each member reads back from every member at once (reads are linearizable).
  for (size_t i = 0; i < members_.size(); ++i) {
    std::string name = "web-" + members_[i].name;
    ASSERT_EQ(Put(members_[i], name, static_cast<int>(i) + 1), 201) << members_[i].process->Log();
    for (auto& m : members_) EXPECT_EQ(CountOn(m, name), static_cast<int>(i) + 1) << name << " on " << m.name;
  }

  // The leader is killed: the other two elect another and go on taking writes.
  Member& old = Named(leader);
  old.process->Signal(SIGKILL);
  ASSERT_TRUE(old.process->Wait(5s).has_value());
  old.process.reset();
  std::string next = AgreedLeader();
  ASSERT_FALSE(next.empty());
  ASSERT_NE(next, leader);
  for (auto& m : members_) {
    if (!m.process) continue;
    EXPECT_EQ(Put(m, "after-" + m.name, 7), 201) << m.name;
  }
  // mt given every member, the dead one first, goes on to one that answers.
  std::string every = "http://127.0.0.1:" + std::to_string(old.api);
  for (auto& m : members_) {
    if (m.process) every += ",http://127.0.0.1:" + std::to_string(m.api);
  }
  auto failover = RunCommand({Runfile("cmd/mt/mt"), "--server", every, "get", "services"});
  EXPECT_EQ(failover.exit_code, 0) << failover.err;
  EXPECT_TRUE(Has(failover.out, "after-" + next)) << failover.out;
  auto empty = RunCommand({Runfile("cmd/mt/mt"), "--server", every + ",", "get", "services"});
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_TRUE(Has(empty.err, "an empty one between commas")) << empty.err;

  const int old_count = leader == "n1" ? 1 : leader == "n2" ? 2 : 3;  // web-nK was written with K
  for (auto& m : members_) {
    if (m.process) {
      EXPECT_EQ(CountOn(m, "web-" + leader), old_count) << m.name;
    }
  }

  // Restarted from its disk, the old leader has every write, its own and those made without it.
  Start(old);
  for (auto& m : members_) {
    if (m.name == old.name) continue;
    EXPECT_TRUE(WaitFor([&] { return CountOn(old, "after-" + m.name) == 7; }, 30s)) << "after-" << m.name;
  }
  EXPECT_EQ(CountOn(old, "web-n1"), 1);
}

TEST_F(ClusterTest, AMemberFarBehindIsSentTheLeadersStateAndGoesOnFromIt) {
  extra_ = {"--raft-snapshot-count", "20"};
  for (auto& m : members_) Start(m);
  std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  Member& behind = Named(leader == "n3" ? "n2" : "n3");
  behind.process->Signal(SIGKILL);
  ASSERT_TRUE(behind.process->Wait(10s).has_value());
  // Enough writes that the others compact their logs past what it has.
  for (int i = 0; i < 60; ++i) ASSERT_EQ(Put(Named(leader), "svc-" + std::to_string(i), i + 1), 201) << i;

  Start(behind);
  EXPECT_TRUE(WaitFor([&] { return CountOn(behind, "svc-59") == 60; }, 30s)) << behind.process->Log();
  EXPECT_TRUE(WaitFor([&] { return Has(behind.process->Log(), "installed the leader's state at index [0-9]+"); }, 5s))
      << behind.process->Log();
  for (int i = 0; i < 60; i += 7) EXPECT_EQ(CountOn(behind, "svc-" + std::to_string(i)), i + 1) << i;
  // From there it goes on with the log: a write through it reads back everywhere.
  ASSERT_EQ(Put(behind, "after-snapshot", 3), 201);
  for (auto& m : members_) {
    EXPECT_TRUE(WaitFor([&] { return CountOn(m, "after-snapshot") == 3; }, 10s)) << m.name;
  }
}

TEST_F(ClusterTest, MembersTalkOverTlsWithTheClusterCaAndOneOfAnotherCaIsKeptOut) {
  ASSERT_EQ(MakeTestCertificates(dir_), "");
  std::filesystem::create_directories(dir_ + "/other");
  ASSERT_EQ(MakeTestCertificates(dir_ + "/other"), "");
  auto tls_of = [&](const std::string& d) {
    return std::vector<std::string>{"--peer-cert-file", d + "/server.crt", "--peer-key-file", d + "/server.key",
                                    "--peer-trusted-ca-file", d + "/ca.crt"};
  };
  extra_ = tls_of(dir_);
  Start(members_[0]);
  Start(members_[1]);
  extra_ = tls_of(dir_ + "/other");  // n3's certificate comes from another CA
  Start(members_[2]);
  ASSERT_EQ(AgreedLeaderOf({"n1", "n2"}).empty(), false);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(Put(members_[i], "tls-" + members_[i].name, 2), 201);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      EXPECT_TRUE(WaitFor([&] { return CountOn(members_[j], "tls-" + members_[i].name) == 2; }, 10s));
    }
  }
  // n3 hears nothing of the cluster: no leader, none of its writes.
  EXPECT_EQ(Status(members_[2]).value("leader", "?"), "");
  EXPECT_NE(CountOn(members_[2], "tls-n1"), 2);
  EXPECT_TRUE(WaitFor([&] { return Has(members_[2].process->Log(), "peer TLS handshake .*failed"); }, 10s))
      << members_[2].process->Log();
}

TEST_F(ClusterTest, AMemberWithoutAQuorumAnswers503WithinBoundedTime) {
  Member& alone = members_[0];
  Start(alone);  // the others never start
  auto start = std::chrono::steady_clock::now();
  int code = Put(alone, "lonely", 1);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, 503);
  EXPECT_LT(took, 8s);
  // A read cannot be confirmed by a quorum either: 503 too, not a possibly stale answer.
  httplib::Client cli("127.0.0.1", alone.api);
  cli.set_read_timeout(10, 0);
  auto get = cli.Get("/v1/services/lonely");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 503) << get->body;
  // ?consistency=local answers at once from this member's own state (which has nothing).
  start = std::chrono::steady_clock::now();
  auto local = cli.Get("/v1/services/lonely?consistency=local");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->status, 404) << local->body;
  auto list = cli.Get("/v1/services?consistency=local");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200) << list->body;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  auto bad = cli.Get("/v1/services?consistency=eventual");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("consistency: must be linearizable"), std::string::npos) << bad->body;
  Json s = Status(alone);
  EXPECT_EQ(s.value("leader", "?"), "") << s.dump();
  EXPECT_EQ(s["members"][1]["healthy"], false) << s.dump();
}

TEST_F(ClusterTest, ClusterFlagsThatCannotWorkAreRefused) {
  struct Case {
    std::vector<std::string> flags;
    std::string says;
  } cases[] = {
      {{"--initial-cluster", initial_}, "--initial-cluster needs --name"},
      {{"--name", "n9", "--initial-cluster", initial_}, "--name \"n9\" is not among the members"},
      {{"--name", "n1", "--initial-cluster", "n1=10.1.2.3:4648,n2=127.0.0.1:5648"},
       "member n1\\): 10.1.2.3:4648 is not a loopback address"},
      // Without --initial-cluster: a cluster of one, whose peer address others must reach safely.
      {{"--peer-listen", "10.1.2.3:4648"}, "--peer-listen: 10.1.2.3:4648 is not a loopback address"},
      {{"--initial-cluster-state", "existing"}, "--initial-cluster-state existing needs --initial-cluster"},
      {{"--name", "Not_A_Label"}, "--name \"Not_A_Label\" is not a member name"},
      {{"--name", "n1", "--initial-cluster", initial_, "--peer-cert-file", "/etc/passwd"},
       "peer TLS needs all three of --peer-cert-file, --peer-key-file and --peer-trusted-ca-file"},
      {{"--name", "n1", "--initial-cluster", "n1=127.0.0.1:4648,n1=127.0.0.1:5648"}, "named twice"},
  };
  for (const auto& c : cases) {
    auto argv = ServerArgv(FreePort(), dir_ + "/refused", c.flags);
    auto r = RunCommand(argv);
    EXPECT_NE(r.exit_code, 0) << c.says;
    EXPECT_TRUE(Has(r.err, c.says)) << r.err;
  }
}

}  // namespace
}  // namespace mentat::e2e
