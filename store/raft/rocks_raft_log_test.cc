// The Raft log on a real RocksDB (the state machine's database, its "raft" family): a node
// that commits entries, is closed and reopened from disk, comes back with the same log; a new
// leader's entries replace a follower's conflicting tail; a compaction keeps the snapshot and
// only the entries after it.
#include "store/raft/rocks_raft_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>

#include "store/rocksdb_state_machine.h"

namespace mentat::raft {
namespace {

std::string TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "raftlog-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

struct Opened {
  std::unique_ptr<RocksStateMachine> sm;
  std::unique_ptr<RocksRaftLog> log;
};

Opened Open(const std::string& dir) {
  StateMachineOptions o;
  o.dir = dir;
  auto sm = RocksStateMachine::Open(o);
  EXPECT_TRUE(sm) << sm.error().message();
  Opened out;
  out.sm = std::move(*sm);
  out.log = std::make_unique<RocksRaftLog>(out.sm->db(), out.sm->raft_family());
  return out;
}

// Drives a one-voter node: every Ready saved (synced when it must be), committed entries
// collected by index.
void Drain(RaftCore& core, RocksRaftLog& log, std::map<uint64_t, std::string>& applied) {
  while (auto rd = core.Ready()) {
    ASSERT_TRUE(log.Save(*rd, rd->must_sync));
    for (const auto& e : rd->committed) {
      if (e.type == EntryType::kConfChange) {
        ASSERT_TRUE(core.ApplyConfChange(e.data));
      }
      if (e.type == EntryType::kNormal && !e.data.empty()) applied[e.index] = e.data;
    }
    ASSERT_TRUE(core.Advance());
  }
}

RaftEntry Fake(uint64_t index, const std::string& raw) {
  RaftEntry e;
  e.index = index;
  e.raw = raw;
  return e;
}

TEST(RocksRaftLog, ANodeReopenedFromDiskHasTheSameLogAndCommitsMore) {
  std::string dir = TempDir();
  std::map<uint64_t, std::string> first;
  {
    Opened db = Open(dir);
    RaftConfig cfg;
    cfg.id = 1;
    auto core = RaftCore::Start(cfg, {}, {1});
    ASSERT_TRUE(core);
    Drain(**core, *db.log, first);  // the bootstrap's configuration, applied before a campaign
    ASSERT_TRUE((*core)->Campaign());
    Drain(**core, *db.log, first);
    for (const char* v : {"a", "b", "c"}) ASSERT_TRUE((*core)->Propose(v));
    Drain(**core, *db.log, first);
    ASSERT_EQ(first.size(), 3u);
  }
  Opened db = Open(dir);
  auto state = db.log->Load();
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_FALSE(state->hard_state.empty());
  auto last = db.log->LastIndex();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, first.rbegin()->first);
  RaftConfig cfg;
  cfg.id = 1;
  auto core = RaftCore::Start(cfg, *state);
  ASSERT_TRUE(core) << core.error().message();
  // Its commit index came back with the hard state: the same entries apply again.
  std::map<uint64_t, std::string> again;
  Drain(**core, *db.log, again);
  EXPECT_EQ(again, first);
  ASSERT_TRUE((*core)->Campaign());
  Drain(**core, *db.log, again);
  ASSERT_TRUE((*core)->Propose("d"));
  Drain(**core, *db.log, again);
  EXPECT_EQ(again.rbegin()->second, "d");
  EXPECT_GT(again.rbegin()->first, first.rbegin()->first);
}

TEST(RocksRaftLog, NewEntriesReplaceTheTailFromTheirFirstIndex) {
  std::string dir = TempDir();
  Opened db = Open(dir);
  RaftReady rd;
  for (uint64_t i = 1; i <= 5; ++i) rd.entries.push_back(Fake(i, "old" + std::to_string(i)));
  ASSERT_TRUE(db.log->Save(rd, true));
  RaftReady newer;
  newer.entries.push_back(Fake(3, "new3"));
  ASSERT_TRUE(db.log->Save(newer, true));
  auto state = db.log->Load();
  ASSERT_TRUE(state);
  EXPECT_EQ(state->entries, (std::vector<std::string>{"old1", "old2", "new3"}));
  EXPECT_EQ(*db.log->LastIndex(), 3u);
}

// The last index is read from disk once and then kept: after a reopen, a shorter overwrite
// still drops the old tail, and entries that only extend the log keep everything before them.
TEST(RocksRaftLog, AReopenedLogStillDropsAConflictingTailAndKeepsWhatItExtends) {
  std::string dir = TempDir();
  {
    Opened db = Open(dir);
    RaftReady rd;
    for (uint64_t i = 1; i <= 5; ++i) rd.entries.push_back(Fake(i, "old" + std::to_string(i)));
    ASSERT_TRUE(db.log->Save(rd, true));
  }
  Opened db = Open(dir);
  RaftReady extend;
  extend.entries.push_back(Fake(6, "old6"));
  ASSERT_TRUE(db.log->Save(extend, true));
  RaftReady newer;
  newer.entries = {Fake(2, "new2"), Fake(3, "new3")};
  ASSERT_TRUE(db.log->Save(newer, true));
  RaftReady after;
  after.entries.push_back(Fake(4, "new4"));
  ASSERT_TRUE(db.log->Save(after, true));
  auto state = db.log->Load();
  ASSERT_TRUE(state);
  EXPECT_EQ(state->entries, (std::vector<std::string>{"old1", "new2", "new3", "new4"}));
  EXPECT_EQ(*db.log->LastIndex(), 4u);
}

TEST(RocksRaftLog, ACompactionKeepsTheSnapshotAndTheEntriesAfterIt) {
  std::string dir = TempDir();
  {
    Opened db = Open(dir);
    RaftReady rd;
    for (uint64_t i = 1; i <= 6; ++i) rd.entries.push_back(Fake(i, "e" + std::to_string(i)));
    ASSERT_TRUE(db.log->Save(rd, true));
    RaftSnapshotInfo snap;
    snap.index = 4;
    snap.raw = "snapshot-at-4";
    ASSERT_TRUE(db.log->Compact(snap));
  }
  Opened db = Open(dir);
  auto state = db.log->Load();
  ASSERT_TRUE(state);
  EXPECT_EQ(state->snapshot, "snapshot-at-4");
  EXPECT_EQ(state->entries, (std::vector<std::string>{"e5", "e6"}));
}

}  // namespace
}  // namespace mentat::raft
