// The collection policy alone (artifact_gc.h), over lists of trees: a tree in use is never a
// victim, whatever its age or the pressure; the periodic pass takes only trees past their
// grace; making room takes the least recently used first and stops as soon as the rest fit.
#include "runtimes/agent/artifact_gc.h"

#include <gtest/gtest.h>

namespace mentat {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

std::vector<std::string> Digests(const std::vector<GcVictim>& victims) {
  std::vector<std::string> out;
  for (const auto& v : victims) out.push_back(v.digest);
  return out;
}

class ArtifactGcTest : public ::testing::Test {
 protected:
  // Trees of 10 bytes and 2 entries each, last used `ago` before now_.
  TreeUse Tree(const std::string& digest, std::chrono::seconds ago, bool in_use = false) {
    return {digest, 10, 2, now_ - ago, in_use};
  }
  Clock::time_point now_ = Clock::now();
};

TEST_F(ArtifactGcTest, ThePeriodicPassTakesUnusedTreesPastTheirGraceOldestFirst) {
  std::vector<TreeUse> trees = {Tree("young", 30min), Tree("old", 3h), Tree("used", 5h, true),
                                Tree("exactly", 1h), Tree("older", 2h)};
  auto victims = UnusedPastGrace(trees, now_, 1h);
  EXPECT_EQ(Digests(victims), (std::vector<std::string>{"old", "older", "exactly"}));
  EXPECT_EQ(victims[0].unused_for, Clock::duration(3h));
  EXPECT_TRUE(UnusedPastGrace(trees, now_, 6h).empty());
}

TEST_F(ArtifactGcTest, MakingRoomTakesTheLeastRecentlyUsedUntilTheRestFit) {
  std::vector<TreeUse> trees = {Tree("a", 1min), Tree("b", 3min), Tree("in-use", 9min, true),
                                Tree("c", 2min)};
  // 40 bytes now: at most 25 leaves two trees, so the two least recently used unused ones go.
  EXPECT_EQ(Digests(LeastRecentlyUsedUntil(trees, now_, 25, 100)),
            (std::vector<std::string>{"b", "c"}));
  // Entries count alike: at most 6 entries leaves three trees.
  EXPECT_EQ(Digests(LeastRecentlyUsedUntil(trees, now_, 100, 6)), std::vector<std::string>{"b"});
  // Fitting already: nothing goes, however old.
  EXPECT_TRUE(LeastRecentlyUsedUntil(trees, now_, 40, 8).empty());
  // Nothing fits: every unused tree goes, the one in use never.
  EXPECT_EQ(Digests(LeastRecentlyUsedUntil(trees, now_, 0, 0)),
            (std::vector<std::string>{"b", "c", "a"}));
}

// A clock that went back (a tree stamped "in the future") is not a reason to remove it.
TEST_F(ArtifactGcTest, ATreeUsedInTheFutureIsNotPastItsGrace) {
  std::vector<TreeUse> trees = {{"ahead", 10, 2, now_ + 1h, false}};
  EXPECT_TRUE(UnusedPastGrace(trees, now_, 1min).empty());
  auto victims = LeastRecentlyUsedUntil(trees, now_, 0, 0);
  ASSERT_EQ(victims.size(), 1u);
  EXPECT_EQ(victims[0].unused_for, Clock::duration::zero());
}

}  // namespace
}  // namespace mentat
