// --initial-cluster as operators write it, and the mistakes they make in it: each refused with
// the flag and the entry named. Member ids depend on the name alone.
#include "store/raft/cluster_config.h"

#include <gtest/gtest.h>

namespace mentat::raft {
namespace {

TEST(InitialCluster, ParsesEveryMemberWithAnIdFromItsNameAlone) {
  auto members = ParseInitialCluster("n1=127.0.0.1:4648,n2=127.0.0.1:5648,n3=10.0.0.3:4648");
  ASSERT_TRUE(members) << members.error().message();
  ASSERT_EQ(members->size(), 3u);
  EXPECT_EQ((*members)[1].name, "n2");
  EXPECT_EQ((*members)[1].peer_address, "127.0.0.1:5648");
  EXPECT_EQ((*members)[2].peer_address, "10.0.0.3:4648");
  auto reordered = ParseInitialCluster("n3=10.0.0.3:4648,n1=127.0.0.1:4648,n2=127.0.0.1:5648");
  ASSERT_TRUE(reordered);
  EXPECT_EQ((*reordered)[1].id, (*members)[0].id);  // n1 either way
  EXPECT_NE((*members)[0].id, (*members)[1].id);
  EXPECT_NE(MemberId("n1"), 0u);
  EXPECT_EQ(MemberId("n1"), (*members)[0].id);
}

TEST(InitialCluster, MistakesAreRefusedNamingTheFlagAndTheEntry) {
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"", "names no members"},
      {"n1=127.0.0.1:4648,", "is not NAME=HOST:PORT"},
      {"n1", "\"n1\" is not NAME=HOST:PORT"},
      {"N1=127.0.0.1:4648", "\"N1\" is not a member name"},
      {"=127.0.0.1:4648", "\"\" is not a member name"},
      {"n1=127.0.0.1", "must be HOST:PORT"},
      {"n1=127.0.0.1:0", "port must be 1-65535, got \"0\""},
      {"n1=127.0.0.1:http", "port must be 1-65535"},
      {"n1=127.0.0.1:4648,n1=127.0.0.1:5648", "member \"n1\" is named twice"},
      {"n1=127.0.0.1:4648,n2=127.0.0.1:4648", "two members have the address 127.0.0.1:4648"},
  };
  for (const auto& c : cases) {
    auto r = ParseInitialCluster(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << c.text;
    EXPECT_NE(r.error().message().find("--initial-cluster"), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(c.says), std::string::npos) << c.text << ": " << r.error().message();
  }
}

TEST(InitialCluster, ThisMemberMustBeAmongThem) {
  auto members = ParseInitialCluster("n1=127.0.0.1:4648,n2=127.0.0.1:5648");
  ASSERT_TRUE(members);
  EXPECT_TRUE(FindMember(*members, "n2"));
  auto missing = FindMember(*members, "n9");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("--name \"n9\" is not among the members of --initial-cluster (n1, n2)"),
            std::string::npos) << missing.error().message();
}

}  // namespace
}  // namespace mentat::raft
