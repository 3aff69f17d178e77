// Bridge addresses without root: subnet parsing, veth names, and the lease files (next free
// from .2, a static address refused while its owner lives, stale leases reclaimed, release by
// the holder only).
#include "runtimes/hull/leases.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "runtimes/isolation/bridge.h"

namespace mentat::hull {
namespace {

namespace fs = std::filesystem;

TEST(Subnet, ParsesAndNamesAddresses) {
  auto s = ParseSubnet("10.88.0.0/24");
  ASSERT_TRUE(s);
  EXPECT_EQ(Ipv4ToString(s->Gateway()), "10.88.0.1");
  EXPECT_EQ(Ipv4ToString(s->Broadcast()), "10.88.0.255");
  EXPECT_TRUE(s->Contains(*ParseIpv4("10.88.0.77")));
  EXPECT_FALSE(s->Contains(*ParseIpv4("10.89.0.77")));
  EXPECT_EQ(s->ToString(), "10.88.0.0/24");
  EXPECT_FALSE(ParseSubnet("10.88.0.1/24")) << "host bits set";
  EXPECT_FALSE(ParseSubnet("10.88.0.0/31"));
  EXPECT_FALSE(ParseSubnet("10.88.0.0"));
  EXPECT_FALSE(ParseIpv4("10.88.0.300"));
  EXPECT_EQ(HostVethName(*ParseIpv4("10.88.0.2")), "hullv0a580002");
  EXPECT_LT(HostVethName(0xffffffff).size(), 16u);
}

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::string(std::getenv("TEST_TMPDIR")) + "/leases-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    subnet_ = *ParseSubnet("10.88.0.0/29");  // .2 .. .6
  }
  LeaseRequest Request(const std::string& name, uint32_t ip = 0) {
    LeaseRequest r{name, subnet_, ip, ::getpid(), 0};
    r.owner_ticks = ReadProcStat(::getpid())->start_ticks;
    return r;
  }
  std::string root_;
  Ipv4Subnet subnet_;
};

TEST_F(LeaseTest, NextFreeFromTwoStaticRefusedStaleReclaimed) {
  StateDir dir(root_);
  auto a = AcquireLease(dir, Request("a"));
  auto b = AcquireLease(dir, Request("b"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Ipv4ToString(*a), "10.88.0.2");
  EXPECT_EQ(Ipv4ToString(*b), "10.88.0.3");
  std::ifstream f(root_ + "/leases/10.88.0.2");
  std::string name;
  pid_t pid = 0;
  f >> name >> pid;
  EXPECT_EQ(name, "a");
  EXPECT_EQ(pid, ::getpid());

  auto clash = AcquireLease(dir, Request("c", *b));
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code(), Code::kConflict);
  EXPECT_NE(clash.error().message().find("leased by container b"), std::string::npos);

  // Owned by a process that is gone (a start time that is not ours): stale, reclaimed.
  ASSERT_TRUE(RecordLeaseOwner(dir, *b, "b", ::getpid(), 1));
  auto c = AcquireLease(dir, Request("c", *b));
  ASSERT_TRUE(c) << c.error().message();
  // Release by a former holder (another name, or the same name with another pid: a new run)
  // leaves the new one's lease alone; the holder's removes it.
  EXPECT_FALSE(ReleaseLease(dir, "10.88.0.3", "b", ::getpid()));
  EXPECT_FALSE(ReleaseLease(dir, "10.88.0.3", "c", ::getpid() + 1));
  EXPECT_TRUE(fs::exists(root_ + "/leases/10.88.0.3"));
  EXPECT_TRUE(ReleaseLease(dir, "10.88.0.3", "c", ::getpid()));
  EXPECT_FALSE(fs::exists(root_ + "/leases/10.88.0.3"));

  // The subnet runs out: .2 .. .6 (5 addresses), .2 taken.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(AcquireLease(dir, Request("n" + std::to_string(i))));
  auto full = AcquireLease(dir, Request("late"));
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message().find("no free address in 10.88.0.0/29"), std::string::npos);
}

}  // namespace
}  // namespace mentat::hull
