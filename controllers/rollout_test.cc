// The rollout policy alone: which slots a rolling or recreate deploy replaces, when it is
// complete, and when it has failed.
#include "controllers/rollout.h"

#include <gtest/gtest.h>

namespace mentat {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

const Clock::time_point kNow = Clock::now();

Slot Old(int i, bool ready = true) {
  Slot s;
  s.index = i;
  s.exists = true;
  s.name = "web-" + std::to_string(i);
  s.ready = ready;
  s.phase = ready ? "Running" : "Restarting";
  s.created = kNow - 1h;
  if (ready) s.ready_since = kNow - 1h;
  return s;
}

Slot New(int i, Clock::duration age, std::optional<Clock::duration> ready_for) {
  Slot s = Old(i, ready_for.has_value());
  s.current = true;
  s.created = kNow - age;
  s.phase = ready_for ? "Running" : "Pending";
  s.ready_since = ready_for ? std::optional(kNow - *ready_for) : std::nullopt;
  return s;
}

Slot Missing(int i) {
  Slot s;
  s.index = i;
  return s;
}

DeployPolicy Rolling(int max_parallel) {
  DeployPolicy p;
  p.max_parallel = max_parallel;
  p.min_healthy_time = 10s;
  p.healthy_deadline = 60s;
  return p;
}

TEST(PlanRollout, RollingReplacesAtMostMaxParallelWhileAllServe) {
  auto plan = PlanRollout({Old(0), Old(1), Old(2), Old(3)}, Rolling(2), false, kNow);
  EXPECT_EQ(plan.replace, (std::vector<int>{0, 1}));
  EXPECT_EQ(plan.unavailable, 2);
  EXPECT_FALSE(plan.complete);
  EXPECT_FALSE(plan.failure);
}

TEST(PlanRollout, WaitsForMinHealthyTimeBeforeTheNextStep) {
  // web-0 is new and Ready for 3 s of the 10 s it needs: it is still unavailable.
  auto plan = PlanRollout({New(0, 5s, 3s), Old(1), Old(2)}, Rolling(1), false, kNow);
  EXPECT_TRUE(plan.replace.empty());
  EXPECT_EQ(plan.updated, 1);
  EXPECT_EQ(plan.healthy, 0);
  ASSERT_TRUE(plan.recheck_at);
  EXPECT_EQ(*plan.recheck_at, kNow + 7s);  // when web-0 passes min_healthy_time

  plan = PlanRollout({New(0, 15s, 11s), Old(1), Old(2)}, Rolling(1), false, kNow);
  EXPECT_EQ(plan.replace, (std::vector<int>{1}));
  EXPECT_EQ(plan.healthy, 1);
}

TEST(PlanRollout, MissingSlotsCountAsUnavailable) {
  auto plan = PlanRollout({Missing(0), Old(1), Old(2)}, Rolling(1), false, kNow);
  EXPECT_TRUE(plan.replace.empty());
  EXPECT_EQ(plan.unavailable, 1);
}

TEST(PlanRollout, UnreadyOutdatedAllocationsAreReplacedWithoutBudget) {
  auto plan = PlanRollout({Old(0, false), Old(1, false), Old(2)}, Rolling(1), false, kNow);
  EXPECT_EQ(plan.replace, (std::vector<int>{0, 1}));
}

TEST(PlanRollout, RecreateReplacesEverythingAtOnce) {
  DeployPolicy p = Rolling(1);
  p.recreate = true;
  auto plan = PlanRollout({Old(0), Old(1), Old(2)}, p, false, kNow);
  EXPECT_EQ(plan.replace, (std::vector<int>{0, 1, 2}));
}

TEST(PlanRollout, CompleteWhenEverySlotIsNewAndHealthy) {
  auto plan = PlanRollout({New(0, 60s, 30s), New(1, 60s, 30s)}, Rolling(1), false, kNow);
  EXPECT_TRUE(plan.complete);
  EXPECT_TRUE(plan.replace.empty());
  EXPECT_EQ(plan.healthy, 2);
  EXPECT_FALSE(PlanRollout({New(0, 60s, 30s), New(1, 60s, 5s)}, Rolling(1), false, kNow).complete);
}

TEST(PlanRollout, NotHealthyWithinTheDeadlineFailsAndStopsReplacing) {
  auto plan = PlanRollout({New(0, 61s, std::nullopt), Old(1), Old(2)}, Rolling(1), false, kNow);
  ASSERT_TRUE(plan.failure);
  EXPECT_NE(plan.failure->find("web-0 was not healthy within 1m"), std::string::npos) << *plan.failure;
  EXPECT_TRUE(plan.replace.empty());

  // Inside the deadline it only waits, and says when to look again.
  plan = PlanRollout({New(0, 20s, std::nullopt), Old(1), Old(2)}, Rolling(1), false, kNow);
  EXPECT_FALSE(plan.failure);
  ASSERT_TRUE(plan.recheck_at);
  EXPECT_EQ(*plan.recheck_at, kNow + 40s);
}

TEST(PlanRollout, AFailedAllocationFailsTheRolloutAtOnce) {
  Slot s = New(0, 2s, std::nullopt);
  s.phase = "Failed";
  s.message = "exited with code 3";
  auto plan = PlanRollout({s, Old(1)}, Rolling(1), false, kNow);
  ASSERT_TRUE(plan.failure);
  EXPECT_EQ(*plan.failure, "web-0 failed: exited with code 3");
}

TEST(PlanRollout, AHaltedRolloutReplacesNothing) {
  auto plan = PlanRollout({Old(0), Old(1)}, Rolling(1), /*halted=*/true, kNow);
  EXPECT_TRUE(plan.replace.empty());
}

TEST(DeployPolicy, ReadsTheCanonicalDeployFieldWithDefaults) {
  DeployPolicy d = DeployPolicy::FromSpec(Json::object());
  EXPECT_FALSE(d.recreate);
  EXPECT_EQ(d.max_parallel, 1);
  EXPECT_EQ(d.min_healthy_time, 10s);
  EXPECT_EQ(d.healthy_deadline, 5min);
  EXPECT_FALSE(d.auto_revert);
  d = DeployPolicy::FromSpec({{"deploy",
                               {{"strategy", "recreate"},
                                {"max_parallel", 3},
                                {"min_healthy_time", "500ms"},
                                {"healthy_deadline", "2m"},
                                {"auto_revert", true}}}});
  EXPECT_TRUE(d.recreate);
  EXPECT_EQ(d.max_parallel, 3);
  EXPECT_EQ(d.min_healthy_time, 500ms);
  EXPECT_EQ(d.healthy_deadline, 2min);
  EXPECT_TRUE(d.auto_revert);
}

}  // namespace
}  // namespace mentat
