// The server's side of agent identity: the secret in the data dir (made once, kept, never
// silently replaced), the per-node keys and proofs derived from it, and the exec session table
// that binds the server's session ids to the token that made them.
#include "apis/server/agent_keys.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>

#include "apis/agent_key.h"
#include "apis/server/exec_session_table.h"

namespace mentat {
namespace {

std::string TempDir() {
  std::string dir = ::testing::TempDir() + "/agent-keys-XXXXXX";
  return mkdtemp(dir.data());
}

TEST(AgentKeys, TheSecretIsMadeOnceKeptPrivateAndGivesEachNodeItsOwnKey) {
  const std::string path = TempDir() + "/agent-secret";
  auto first = AgentKeys::Open(path);
  ASSERT_TRUE(first) << first.error().message();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = AgentKeys::Open(path);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*first)->KeyFor("node-a"), (*again)->KeyFor("node-a")) << "a restart keeps the keys";
  EXPECT_NE((*first)->KeyFor("node-a"), (*first)->KeyFor("node-b"));
  EXPECT_EQ((*first)->KeyFor("node-a").size(), 64u);
}

TEST(AgentKeys, ASecretFileThatIsNotOneIsAnErrorNotANewSecret) {
  const std::string path = TempDir() + "/agent-secret";
  std::ofstream(path) << "not a secret\n";
  auto keys = AgentKeys::Open(path);
  ASSERT_FALSE(keys);
  EXPECT_NE(keys.error().message().find(path), std::string::npos) << keys.error().message();
}

TEST(AgentKeys, AProofNeedsTheKeyAndAnswersOneChallengeOnly) {
  auto keys = AgentKeys::ForSecret(std::string(64, 'a'));
  const std::string key = keys->KeyFor("node-a");
  EXPECT_EQ(key, AgentKeyFor(std::string(64, 'a'), "node-a"));
  EXPECT_NE(AgentProof(key, "c1"), AgentProof(key, "c2"));
  EXPECT_NE(AgentProof(key, "c1"), AgentProof(keys->KeyFor("node-b"), "c1"));
  EXPECT_TRUE(ConstantTimeEquals(AgentProof(key, "c1"), AgentProof(key, "c1")));
  EXPECT_FALSE(ConstantTimeEquals(AgentProof(key, "c1"), ""));
}

TEST(ExecSessionTable, ASessionIsItsCreatorsAlone) {
  ExecSessionTable table(std::chrono::seconds(300));
  std::string id = table.Add({"node-a", "agent-id-1", "deployer"});
  EXPECT_EQ(id.size(), 32u);
  EXPECT_NE(table.Add({"node-a", "agent-id-2", "deployer"}), id);
  auto mine = table.Find(id, "deployer");
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->node, "node-a");
  EXPECT_EQ(mine->agent_id, "agent-id-1");
  auto theirs = table.Find(id, "bootstrap-admin");
  ASSERT_FALSE(theirs);
  EXPECT_EQ(theirs.error().code(), Code::kForbidden);
  EXPECT_EQ(table.Find("agent-id-1", "deployer").error().code(), Code::kNotFound)
      << "the agent's own id is no id of the server's";
  table.Remove(id);
  EXPECT_EQ(table.Find(id, "deployer").error().code(), Code::kNotFound);
}

TEST(ExecSessionTable, IdleSessionsAreForgottenButNotOnesBeingRead) {
  ExecSessionTable table(std::chrono::seconds(0));  // idle at once
  std::string idle = table.Add({"node-a", "a", "deployer"});
  std::string read = table.Add({"node-a", "b", "deployer"});
  table.SetReading(read, true);
  EXPECT_EQ(table.Find(idle, "deployer").error().code(), Code::kNotFound);
  EXPECT_TRUE(table.Find(read, "deployer"));
  table.SetReading(read, false);
  EXPECT_EQ(table.Find(read, "deployer").error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace mentat
