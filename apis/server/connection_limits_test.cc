// The caps on connections, in all and per client address, and the automatic total cap.
#include "apis/server/connection_limits.h"

#include <gtest/gtest.h>

namespace mentat {
namespace {

using Verdict = ConnectionLimits::Verdict;

TEST(ConnectionLimits, CapsPerClientAndInAll) {
  ConnectionLimits limits(3, 2);
  EXPECT_EQ(limits.Admit("10.0.0.1"), Verdict::kAdmit);
  EXPECT_EQ(limits.Admit("10.0.0.1"), Verdict::kAdmit);
  EXPECT_EQ(limits.Admit("10.0.0.1"), Verdict::kTooManyFromClient);
  EXPECT_EQ(limits.Admit("10.0.0.2"), Verdict::kAdmit);
  EXPECT_EQ(limits.Admit("10.0.0.3"), Verdict::kTooManyInAll);
  EXPECT_EQ(limits.open(), 3u);
  limits.Release("10.0.0.1");
  EXPECT_EQ(limits.Admit("10.0.0.3"), Verdict::kAdmit);
  EXPECT_EQ(limits.Admit("10.0.0.1"), Verdict::kTooManyInAll);
}

TEST(ConnectionLimits, ZeroPerClientIsNoCap) {
  ConnectionLimits limits(100, 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(limits.Admit("127.0.0.1"), Verdict::kAdmit);
  EXPECT_EQ(limits.Admit("127.0.0.1"), Verdict::kTooManyInAll);
}

TEST(ConnectionLimits, AutoLeavesAReserveOfDescriptors) {
  EXPECT_EQ(AutoMaxConnections(20000), 17500u);
  EXPECT_EQ(AutoMaxConnections(256), 192u);
  EXPECT_EQ(AutoMaxConnections(100), 64u);
}

}  // namespace
}  // namespace mentat
