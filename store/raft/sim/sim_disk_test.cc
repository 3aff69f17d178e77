// SimDisk keeps what a WAL keeps in a crash: every synced batch and the batches before it, then
// some prefix of the unsynced ones.
#include "store/raft/sim/sim_disk.h"

#include <gtest/gtest.h>

namespace mentat::raft::sim {
namespace {

RaftEntry Entry(uint64_t index, uint64_t term) {
  RaftEntry e;
  e.index = index;
  e.term = term;
  e.raw = "e" + std::to_string(index) + "t" + std::to_string(term);
  return e;
}

TEST(SimDisk, ASyncedSaveMakesItAndEveryEarlierBatchDurable) {
  SimDisk disk;
  disk.Save(DiskBatch{"hs1", std::nullopt, {Entry(1, 1)}}, false);
  disk.Save(DiskBatch{"hs2", std::nullopt, {Entry(2, 1)}}, true);
  EXPECT_EQ(disk.unsynced(), 0u);
  EXPECT_EQ(disk.durable().hard_state, "hs2");
  EXPECT_EQ(disk.durable().LastIndex(), 2u);
}

TEST(SimDisk, ACrashKeepsSomePrefixOfTheUnsyncedBatchesAndNothingOutOfOrder) {
  std::set<uint64_t> kept_counts;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SimDisk disk;
    disk.Save(DiskBatch{"hs0", std::nullopt, {Entry(1, 1)}}, true);
    for (uint64_t i = 2; i <= 4; ++i) disk.Save(DiskBatch{"", std::nullopt, {Entry(i, 1)}}, false);
    SimRandom rng(seed);
    disk.Crash(rng);
    const uint64_t last = disk.durable().LastIndex();
    ASSERT_GE(last, 1u);
    for (uint64_t i = 1; i <= last; ++i) EXPECT_TRUE(disk.durable().entries.count(i)) << i;
    EXPECT_EQ(disk.written().LastIndex(), last);  // the process sees what survived
    kept_counts.insert(last);
  }
  EXPECT_EQ(kept_counts, (std::set<uint64_t>{1, 2, 3, 4}));  // none, some, all
}

TEST(SimDisk, NewEntriesReplaceTheLogFromTheirIndexAndASnapshotDropsWhatItCovers) {
  LogImage log;
  DiskBatch{"", std::nullopt, {Entry(1, 1), Entry(2, 1), Entry(3, 1)}}.ApplyTo(log);
  DiskBatch{"", std::nullopt, {Entry(2, 2)}}.ApplyTo(log);
  EXPECT_EQ(log.LastIndex(), 2u);
  EXPECT_EQ(log.TermAt(2), 2u);
  RaftSnapshotInfo snap;
  snap.index = 2;
  snap.term = 2;
  DiskBatch{"", snap, {}}.ApplyTo(log);
  EXPECT_TRUE(log.entries.empty());
  EXPECT_EQ(log.TermAt(2), 2u);
  EXPECT_TRUE(log.Holds(1, "anything under the snapshot"));
  EXPECT_EQ(log.LastIndex(), 2u);
}

}  // namespace
}  // namespace mentat::raft::sim
