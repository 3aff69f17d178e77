// A cluster of one (ClusterMember without --initial-cluster), as every mentat-server without
// --initial-cluster is: a store written by the single-node LocalStore (no Raft log) opens as a
// cluster of one with its objects, revisions and watch history, leads at once and goes on
// writing; its peer address is none until it is given one, which a restart records through the
// log, and without which it refuses to add a member; and its name stays with its data.
#include "store/raft/cluster_member.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "store/local_store.h"
#include "store/raft/testing/objects.h"

namespace mentat::raft {
namespace {

using namespace std::chrono_literals;

using testing::Svc;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

class ClusterOfOneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  StateMachineOptions State() {
    StateMachineOptions so;
    so.dir = dir_ + "/store";
    so.sync = false;
    return so;
  }
  // A cluster of one, this member alone, over the test's directory.
  Result<std::unique_ptr<ClusterMember>> StartAlone(const std::string& peer_listen, const std::string& name = "n1",
                                                    bool name_is_default = false) {
    ClusterMemberOptions mo;
    mo.name = name;
    mo.name_is_default = name_is_default;
    mo.peer_listen = peer_listen;
    mo.state = State();
    mo.raft.snapshot_dir = dir_ + "/raft-snapshots";
    return ClusterMember::Start(mo);
  }
  static Json Self(ClusterMember& m) {
    Json status = m.Status();
    EXPECT_EQ(status["members"].size(), 1u) << status.dump();
    return status["members"].empty() ? Json() : status["members"][0];
  }

  std::string dir_;
};

TEST_F(ClusterOfOneTest, ALocalStoreDirectoryOpensWithItsObjectsRevisionsAndHistoryAndLeadsAtOnce) {
  int64_t before = 0;
  {
    auto local = OpenLocalStore(State());
    ASSERT_TRUE(local) << local.error().ToString();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*local)->Put(Svc("s" + std::to_string(i), i + 1)));
    ASSERT_TRUE((*local)->Put(Svc("s0", 10)));
    ASSERT_TRUE((*local)->Delete({"Service", "default", "s4"}));
    before = (*local)->CurrentRevision();
    ASSERT_EQ(before, 7);
  }
  const auto started = std::chrono::steady_clock::now();
  auto member = StartAlone("");
  ASSERT_TRUE(member) << member.error().ToString();
  ClusterMember& m = **member;
  Store& store = m.store();
  // The first write goes through at once: the one voter campaigned without an election timeout.
  auto first = store.Put(Svc("first", 1));
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 900ms);
  EXPECT_TRUE(m.IsLeader());
  EXPECT_EQ(ResourceVersionOf(*first), before + 1);
  EXPECT_EQ(m.node().StatusJson().value("term", 0), 2) << "one campaign, no election timeout";

  for (int i = 0; i < 4; ++i) {
    auto got = store.Get({"Service", "default", "s" + std::to_string(i)});
    ASSERT_TRUE(got) << i;
    EXPECT_EQ((*got)["spec"]["count"], i == 0 ? 10 : i + 1);
  }
  EXPECT_FALSE(store.Get({"Service", "default", "s4"}));
  // The watch history the local store wrote is served from its first revision on.
  auto w = store.Watch("Service", 1);
  ASSERT_TRUE(w) << w.error().ToString();
  std::vector<int64_t> revisions;
  while (revisions.size() < 7) {
    auto ev = (*w)->Next(5s);
    ASSERT_TRUE(ev && *ev) << "after " << revisions.size() << " events";
    revisions.push_back(ResourceVersionOf((**ev)->object));
  }
  for (size_t i = 0; i < revisions.size(); ++i) EXPECT_EQ(revisions[i], static_cast<int64_t>(i) + 2);
  Json self = Self(m);
  EXPECT_EQ(self["name"], "n1");
  EXPECT_EQ(self["role"], "leader");
  EXPECT_EQ(self["peerURL"], "");
  m.Stop();
  member->reset();

  // Again, now from its Raft log: everything is there and revisions go on.
  member = StartAlone("");
  ASSERT_TRUE(member) << member.error().ToString();
  auto next = (*member)->store().Put(Svc("second", 2));
  ASSERT_TRUE(next) << next.error().ToString();
  EXPECT_EQ(ResourceVersionOf(*next), before + 2);
  EXPECT_TRUE((*member)->store().Get({"Service", "default", "first"}));
  EXPECT_TRUE((*member)->store().Get({"Service", "default", "s3"}));
}

TEST_F(ClusterOfOneTest, WithoutAPeerPortAddIsRefusedUntilARestartRecordsOne) {
  auto member = StartAlone("");
  ASSERT_TRUE(member) << member.error().ToString();
  ASSERT_TRUE((*member)->store().Put(Svc("a", 1)));
  auto add = (*member)->AddMember("n2", "127.0.0.1:" + std::to_string(FreePort()));
  ASSERT_FALSE(add);
  EXPECT_EQ(add.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(add.error().message().find("restart it with --peer-listen HOST:PORT"), std::string::npos)
      << add.error().message();
  member->reset();

  const std::string first = "127.0.0.1:" + std::to_string(FreePort());
  member = StartAlone(first);
  ASSERT_TRUE(member) << member.error().ToString();
  EXPECT_EQ(Self(**member)["peerURL"], first);
  EXPECT_TRUE((*member)->store().Get({"Service", "default", "a"}));
  member->reset();

  // Without --peer-listen it stays where it was recorded; another one moves it.
  member = StartAlone("");
  ASSERT_TRUE(member) << member.error().ToString();
  EXPECT_EQ(Self(**member)["peerURL"], first);
  member->reset();
  const std::string second = "127.0.0.1:" + std::to_string(FreePort());
  member = StartAlone(second);
  ASSERT_TRUE(member) << member.error().ToString();
  EXPECT_EQ(Self(**member)["peerURL"], second);

  // With a peer port, a member is added (a learner, as no n2 runs here).
  auto added = (*member)->AddMember("n2", "127.0.0.1:" + std::to_string(FreePort()));
  ASSERT_TRUE(added) << added.error().ToString();
  EXPECT_EQ((*member)->Status()["members"].size(), 2u);
  member->reset();
  // A member of a cluster of two cannot move its peer address: the other dials it there.
  auto moved = StartAlone("127.0.0.1:" + std::to_string(FreePort()));
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(moved.error().message().find("start it with --peer-listen " + second), std::string::npos)
      << moved.error().message();
}

TEST_F(ClusterOfOneTest, ItsNameStaysWithItsData) {
  auto member = StartAlone("", "n1");
  ASSERT_TRUE(member) << member.error().ToString();
  ASSERT_TRUE((*member)->store().Put(Svc("a", 1)));
  member->reset();
  // The host's name changed (no --name): it goes on as n1.
  member = StartAlone("", "other-host", /*name_is_default=*/true);
  ASSERT_TRUE(member) << member.error().ToString();
  EXPECT_EQ((*member)->name(), "n1");
  EXPECT_TRUE((*member)->store().Put(Svc("b", 1)));
  member->reset();
  // A --name that is not the recorded one is refused.
  auto renamed = StartAlone("", "n2");
  ASSERT_FALSE(renamed);
  EXPECT_EQ(renamed.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(renamed.error().message().find("start it with --name n1"), std::string::npos)
      << renamed.error().message();
}

}  // namespace
}  // namespace mentat::raft
