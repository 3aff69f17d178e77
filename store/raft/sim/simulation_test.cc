// The deterministic simulation over 2,000 seeds (3 and 5 nodes), and proof that it can fail: the
// same simulation with the Ready contract broken on purpose (acknowledging before the disk synced;
// reading without ReadIndex; applying duplicated entries twice) is caught within a few seeds
// (in the first 60 seeds: 56, 58 and 12 of them). Acknowledging before syncing is caught by the
// durability invariants at the crash; without them, 6 of the first 30 seeds end in the library's
// panic on a later heartbeat (which ends the process) and the others pass. The must-sync test is
// a finding.
// The disks are simulated in memory (sim_disk.h), not RocksDB: losing unsynced writes in a crash
// cannot be injected into the RocksDB package thousands of times a run.
//
// One seed again:  bazel test //store/raft/sim:simulation_test --test_env=MENTAT_SIM_SEED=1234
//                  --test_filter='*OneSeed*' --test_output=streamed
// (add --test_env=MENTAT_SIM_CONTRACT=ack-before-sync, read-without-read-index,
// no-deduplication or must-sync-only to replay a run of a deliberately broken contract).
// More seeds than the suite's: --test_env=MENTAT_SIM_SEED_OFFSET=2000 runs seeds 2001..4000.
#include "store/raft/sim/simulation.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

namespace mentat::raft::sim {
namespace {

constexpr uint64_t kSeeds = 2000;
constexpr uint64_t kSeedsPerBlock = 50;

const char* ContractName(Contract c) {
  switch (c) {
    case Contract::kProduction:
      return "production";
    case Contract::kAckBeforeSync:
      return "ack-before-sync";
    case Contract::kReadWithoutReadIndex:
      return "read-without-read-index";
    case Contract::kNoDeduplication:
      return "no-deduplication";
    case Contract::kMustSyncOnly:
      return "must-sync-only";
  }
  return "?";
}

std::string Rerun(uint64_t seed, Contract c) {
  std::string cmd = "bazel test //store/raft/sim:simulation_test --test_env=MENTAT_SIM_SEED=" +
                    std::to_string(seed);
  if (c != Contract::kProduction)
    cmd += std::string(" --test_env=MENTAT_SIM_CONTRACT=") + ContractName(c);
  return cmd + " --test_filter='*OneSeed*' --test_output=streamed";
}

std::string Describe(const SimOptions& o, const SimResult& r) {
  const auto& s = r.stats;
  return "seed " + std::to_string(o.seed) + " (" + std::to_string(o.nodes) + " nodes, contract " +
         ContractName(o.contract) + "): " + std::to_string(s.ops) + " ops (" +
         std::to_string(s.completed) + " answered), " + std::to_string(s.crashes) + " crashes, " +
         std::to_string(s.partitions) + " partitions, " + std::to_string(s.elections) +
         " terms with a leader, " + std::to_string(s.snapshots_sent) + " snapshots sent, index " +
         std::to_string(s.committed) + " committed";
}

std::string FailureMessage(const SimOptions& o, const SimResult& r) {
  return Describe(o, r) + "\nFAILED: " + r.failure + "\nrerun exactly this seed:\n  " +
         Rerun(o.seed, o.contract) + "\n" + r.trace;
}

class SimulationSeeds : public ::testing::TestWithParam<uint64_t> {};

// On simulated in-memory disks (sim_disk.h), not RocksDB.
TEST_P(SimulationSeeds, InvariantsHoldAndHistoryIsLinearizableOnSimulatedDisks) {
  if (std::getenv("MENTAT_SIM_SEED")) GTEST_SKIP() << "MENTAT_SIM_SEED is set: OneSeed runs it";
  // MENTAT_SIM_SEED_OFFSET=N explores seeds N+1..N+2000 instead (a soak); failures name the seed.
  const char* offset = std::getenv("MENTAT_SIM_SEED_OFFSET");
  const uint64_t first =
      (offset ? std::strtoull(offset, nullptr, 10) : 0) + GetParam() * kSeedsPerBlock + 1;
  SimStats total;
  int failures = 0;
  for (uint64_t seed = first; seed < first + kSeedsPerBlock; ++seed) {
    SimOptions o = SuiteOptions(seed);
    // To stderr, unbuffered, before the run: should the library panic (it ends the process), the
    // log's last line names the seed.
    std::cerr << "seed " << seed;
    SimResult r = RunSimulation(o);
    std::cerr << (r.failure.empty() ? " ok\n" : " FAILED\n");
    if (!r.failure.empty() && ++failures <= 3) ADD_FAILURE() << FailureMessage(o, r);
    total.ops += r.stats.ops;
    total.completed += r.stats.completed;
    total.crashes += r.stats.crashes;
    total.snapshots_sent += r.stats.snapshots_sent;
  }
  // Not vacuous: clients got answers, nodes crashed, followers needed snapshots.
  EXPECT_GT(total.completed, kSeedsPerBlock * 50);
  EXPECT_GT(total.crashes, kSeedsPerBlock);
  EXPECT_GT(total.snapshots_sent, 0u);
  std::cout << "seeds " << first << ".." << first + kSeedsPerBlock - 1 << ": " << total.ops
            << " ops, " << total.completed << " answered, " << total.crashes << " crashes, "
            << total.snapshots_sent << " snapshots sent\n";
}

INSTANTIATE_TEST_SUITE_P(Blocks, SimulationSeeds,
                         ::testing::Range<uint64_t>(0, kSeeds / kSeedsPerBlock));

Contract ContractFromEnv() {
  const char* c = std::getenv("MENTAT_SIM_CONTRACT");
  for (Contract k : {Contract::kAckBeforeSync, Contract::kReadWithoutReadIndex,
                     Contract::kNoDeduplication, Contract::kMustSyncOnly}) {
    if (c && std::string(c) == ContractName(k)) return k;
  }
  return Contract::kProduction;
}

TEST(Simulation, OneSeed) {
  const char* seed = std::getenv("MENTAT_SIM_SEED");
  if (!seed) GTEST_SKIP() << "set MENTAT_SIM_SEED to replay one seed";
  SimOptions o = SuiteOptions(std::strtoull(seed, nullptr, 10));
  o.contract = ContractFromEnv();
  SimResult r = RunSimulation(o);
  EXPECT_TRUE(r.failure.empty()) << FailureMessage(o, r);
  std::cout << Describe(o, r) << "\nfingerprint " << r.fingerprint << "\n";
}

TEST(Simulation, ASeedReplaysTheSameRun) {
  for (uint64_t seed : {7, 9}) {
    SimResult a = RunSimulation(SuiteOptions(seed));
    SimResult b = RunSimulation(SuiteOptions(seed));
    EXPECT_EQ(a.fingerprint, b.fingerprint) << "seed " << seed;
    EXPECT_EQ(a.stats.elections, b.stats.elections) << "seed " << seed;
  }
  EXPECT_NE(RunSimulation(SuiteOptions(7)).fingerprint,
            RunSimulation(SuiteOptions(10)).fingerprint);
}

// Runs seeds 1.. under a broken contract until one fails; returns that run's report.
std::string FirstCaught(Contract c, uint64_t max_seeds, uint64_t& caught_at,
                        double crash_per_tick = SimOptions().crash_per_tick) {
  for (uint64_t seed = 1; seed <= max_seeds; ++seed) {
    SimOptions o = SuiteOptions(seed);
    o.contract = c;
    o.crash_per_tick = crash_per_tick;
    SimResult r = RunSimulation(o);
    if (!r.failure.empty()) {
      caught_at = seed;
      std::cout << "caught at seed " << seed << ": " << FailureMessage(o, r).substr(0, 600) << "\n";
      return r.failure;
    }
  }
  return "";
}

TEST(Simulation, AcknowledgingBeforeTheDiskSyncedIsCaught) {
  uint64_t seed = 0;
  std::string failure = FirstCaught(Contract::kAckBeforeSync, 60, seed);
  ASSERT_FALSE(failure.empty()) << "60 seeds of a node that never syncs found nothing";
}

TEST(Simulation, ReadingWithoutReadIndexIsCaughtByTheLinearizabilityChecker) {
  uint64_t seed = 0;
  std::string failure = FirstCaught(Contract::kReadWithoutReadIndex, 60, seed);
  ASSERT_FALSE(failure.empty()) << "60 seeds of stale reads found nothing";
  EXPECT_NE(failure.find("not linearizable"), std::string::npos) << failure;
}

TEST(Simulation, ApplyingADuplicatedProposalTwiceIsCaught) {
  uint64_t seed = 0;
  std::string failure = FirstCaught(Contract::kNoDeduplication, 60, seed);
  ASSERT_FALSE(failure.empty()) << "60 seeds without deduplication found nothing";
}

// A finding of this simulation (first as seed 1362 of the suite, at the commit that added it):
// raft_core.h says to sync a Ready "when must_sync", and etcd's must_sync does not count a
// snapshot. A follower saves a received snapshot unsynced, acknowledges it, crashes and loses
// it; the leader still counts it as replicated, and the follower's library panics on the next
// heartbeat ("tocommit(30) is out of range [lastIndex(29)]"). The invariant sees it at the crash.
// With crashes three times as often as in the suite it shows within a few hundred seeds.
TEST(Simulation, SyncingOnlyWhenMustSyncSaysLosesAnAcknowledgedSnapshot) {
  uint64_t seed = 0;
  std::string failure = FirstCaught(Contract::kMustSyncOnly, 400, seed, 0.036);
  EXPECT_NE(failure.find("durability: node"), std::string::npos) << failure;
}

}  // namespace
}  // namespace mentat::raft::sim
