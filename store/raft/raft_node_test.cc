// RaftNode members in one process (testing/members.h: each over its own RocksDB on disk), their
// messages passed in memory (Loopback) and over real TCP on 127.0.0.1 (PeerTransport). Writes
// proposed on any member apply on all with the same revisions; a write without quorum fails
// in bounded time and is never acknowledged; the leader's loss elects another and the old one,
// restarted from its disk, catches up; two conditional writes racing from two members cannot
// both succeed.
#include "store/raft/raft_node.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <iostream>
#include <thread>
#include <vector>

#include "store/object_layer.h"
#include "store/raft/testing/members.h"
#include "store/raft/testing/objects.h"

namespace mentat::raft {
namespace {

using namespace std::chrono_literals;
using testing::WaitFor;

using testing::Svc;

class ThreeMembers : public testing::Members, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    over_tcp_ = GetParam();
    StartCluster(3);
  }
  // A Put decided on member `id` against its own state and proposed there.
  std::future<Result<std::vector<Change>>> Put(uint64_t id, const Json& obj, WriteOptions opts = {}) {
    RecordingReader reader(*states_[id]);
    Json current;
    auto change = PreparePut(reader, obj, opts, &current);
    auto promise = std::make_shared<std::promise<Result<std::vector<Change>>>>();
    if (!change || !*change) {
      promise->set_value(change ? Result<std::vector<Change>>(std::vector<Change>{})
                                : std::unexpected(change.error()));
      return promise->get_future();
    }
    Proposal p;
    p.reads = reader.TakeReads();
    p.changes.push_back(std::move(**change));
    auto f = promise->get_future();
    nodes_[id]->Propose(std::move(p), [promise](Result<std::vector<Change>> r) { promise->set_value(std::move(r)); });
    return f;
  }
};

TEST_P(ThreeMembers, WritesProposedOnAnyMemberApplyOnAllWithTheSameRevisions) {
  ASSERT_NE(WaitLeader(), 0u);
  for (uint64_t id : {1, 2, 3}) {
    auto r = Put(id, Svc("svc-" + std::to_string(id), static_cast<int>(id))).get();
    ASSERT_TRUE(r) << "member " << id << ": " << r.error().message();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_GT(ResourceVersionOf((*r)[0].object), 0);
  }
  ASSERT_TRUE(Settled());
  for (const char* name : {"svc-1", "svc-2", "svc-3"}) {
    auto one = states_[1]->Find({"Service", "default", name});
    for (uint64_t id : {2, 3}) {
      auto other = states_[id]->Find({"Service", "default", name});
      ASSERT_TRUE(one && *one && other && *other) << name;
      EXPECT_EQ(**one, **other) << name << " on member " << id;
    }
  }
  EXPECT_EQ(states_[1]->CurrentRevision(), states_[2]->CurrentRevision());
  EXPECT_EQ(states_[1]->CurrentRevision(), states_[3]->CurrentRevision());
}

TEST_P(ThreeMembers, AWriteWithoutAQuorumFailsWithinTheTimeoutAndIsNeverApplied) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  for (uint64_t id : {1, 2, 3}) {
    if (id != leader) StopNode(id);
  }
  auto start = std::chrono::steady_clock::now();
  auto r = Put(leader, Svc("lonely", 1)).get();
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kUnavailable) << r.error().message();
  EXPECT_LT(took, 7s);  // the 5 s proposal timeout, and not much more
  auto found = states_[leader]->Find({"Service", "default", "lonely"});
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
}

TEST_P(ThreeMembers, AReadBarrierConfirmsOnEveryMemberAndFailsWithinTheTimeoutWithoutAQuorum) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  ASSERT_TRUE(Put(leader, Svc("seen", 1)).get());
  const int64_t committed = states_[leader]->AppliedIndex();
  for (uint64_t id : {1, 2, 3}) {
    std::promise<Status> barrier;
    nodes_[id]->ReadBarrier([&](Status st) { barrier.set_value(std::move(st)); });
    auto st = barrier.get_future().get();
    ASSERT_TRUE(st) << "member " << id << ": " << st.error().message();
    // Released only once the member applied what the leader had committed.
    EXPECT_GE(states_[id]->AppliedIndex(), committed) << "member " << id;
  }
  for (uint64_t id : {1, 2, 3}) {
    if (id != leader) StopNode(id);
  }
  std::promise<Status> barrier;
  auto start = std::chrono::steady_clock::now();
  nodes_[leader]->ReadBarrier([&](Status st) { barrier.set_value(std::move(st)); });
  auto st = barrier.get_future().get();
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kUnavailable) << st.error().message();
  EXPECT_LT(took, 7s);  // the 5 s proposal timeout, and not much more
}

// Each confirmation costs the leader a heartbeat round to every member: barriers that come
// while one is asked share the next rather than each asking its own.
TEST_P(ThreeMembers, ReadBarriersAskedTogetherShareConfirmations) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  ASSERT_TRUE(Put(leader, Svc("seen", 1)).get());
  const uint64_t follower = leader == 1 ? 2 : 1;
  for (uint64_t id : {leader, follower}) {
    const ReadCounts before = nodes_[id]->Reads();
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 8; ++t) {
      readers.emplace_back([&] {
        for (int i = 0; i < 25; ++i) {
          std::promise<Status> barrier;
          nodes_[id]->ReadBarrier([&](Status st) { barrier.set_value(std::move(st)); });
          (barrier.get_future().get() ? ok : failed)++;
        }
      });
    }
    for (auto& t : readers) t.join();
    EXPECT_EQ(ok, 200) << "member " << id;
    EXPECT_EQ(failed, 0) << "member " << id;
    const ReadCounts after = nodes_[id]->Reads();
    EXPECT_EQ(after.barriers - before.barriers, 200u) << "member " << id;
    // Eight readers, one confirmation asked at a time: about a quarter (asked one each: 200).
    EXPECT_LE(after.rounds - before.rounds, 100u) << "member " << id;
    std::cout << "member " << id << (id == leader ? " (leader)" : " (follower)") << ": 200 barriers, "
              << after.rounds - before.rounds << " rounds\n";
  }
}

TEST_P(ThreeMembers, AnotherLeaderTakesOverAndTheOldOneCatchesUpFromItsDisk) {
  uint64_t old = WaitLeader();
  ASSERT_NE(old, 0u);
  ASSERT_TRUE(Put(old, Svc("before", 1)).get());
  StopNode(old);
  std::set<uint64_t> rest;
  for (uint64_t id : {1, 2, 3}) {
    if (id != old) rest.insert(id);
  }
  uint64_t next = WaitLeader(rest);
  ASSERT_NE(next, 0u);
  auto r = Put(next, Svc("after", 2)).get();
  ASSERT_TRUE(r) << r.error().message();
  StartNode(old);
  ASSERT_TRUE(AllApplied({old}, states_[next]->AppliedIndex()));
  auto after = states_[old]->Find({"Service", "default", "after"});
  ASSERT_TRUE(after && *after);
  EXPECT_EQ(**after, *states_[next]->Find({"Service", "default", "after"}).value());
}

TEST_P(ThreeMembers, OfTwoConditionalWritesRacingFromTwoMembersExactlyOneSucceeds) {
  ASSERT_NE(WaitLeader(), 0u);
  auto created = Put(1, Svc("web", 1)).get();
  ASSERT_TRUE(created) << created.error().message();
  int64_t rv = ResourceVersionOf((*created)[0].object);
  ASSERT_TRUE(Settled());
  WriteOptions cond;
  cond.expected_revision = rv;
  auto a = Put(2, Svc("web", 5), cond);
  auto b = Put(3, Svc("web", 9), cond);
  auto ra = a.get();
  auto rb = b.get();
  EXPECT_NE(static_cast<bool>(ra), static_cast<bool>(rb))
      << (ra ? "a ok" : ra.error().message()) << " / " << (rb ? "b ok" : rb.error().message());
  const auto& refused = ra ? rb : ra;
  if (!refused) {
    EXPECT_EQ(refused.error().code(), Code::kConflict) << refused.error().message();
  }
  ASSERT_TRUE(Settled());
  auto one = states_[2]->Find({"Service", "default", "web"});
  auto other = states_[3]->Find({"Service", "default", "web"});
  EXPECT_EQ(**one, **other);
  EXPECT_EQ((**one)["spec"]["count"], ra ? 5 : 9);
}

INSTANTIATE_TEST_SUITE_P(Transports, ThreeMembers, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tcp" : "Loopback"; });

// Members that compact their logs after 20 entries, keeping 5 for followers a little behind.
class CompactingMembers : public ThreeMembers {
 protected:
  void SetUp() override {
    over_tcp_ = GetParam();
    snapshot_entries_ = 20;
    catch_up_entries_ = 5;
    StartCluster(3);
  }
  // Every object of member `a` is on member `b`, the same, at the same revision.
  void ExpectSameState(uint64_t a, uint64_t b) {
    auto objects_a = states_[a]->List("Service", {});
    auto objects_b = states_[b]->List("Service", {});
    ASSERT_TRUE(objects_a && objects_b);
    EXPECT_EQ(objects_a->items, objects_b->items) << "members " << a << " and " << b;
    EXPECT_EQ(states_[a]->CurrentRevision(), states_[b]->CurrentRevision());
    EXPECT_EQ(states_[a]->AppliedIndex(), states_[b]->AppliedIndex());
  }
};

TEST_P(CompactingMembers, AMemberBehindTheCompactedLogIsSentTheLeadersStateAndGoesOn) {
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  uint64_t behind = leader == 3 ? 2 : 3;
  StopNode(behind);
  for (int i = 0; i < 60; ++i) {
    auto r = Put(leader, Svc("svc-" + std::to_string(i), i)).get();
    ASSERT_TRUE(r) << i << ": " << r.error().message();
  }
  // The leader's log on disk no longer holds the first entries.
  EXPECT_GE(nodes_[leader]->Snapshots().taken, 2u);
  RocksRaftLog log(states_[leader]->db(), states_[leader]->raft_family());
  auto persisted = log.Load();
  ASSERT_TRUE(persisted);
  EXPECT_FALSE(persisted->snapshot.empty());
  EXPECT_LT(persisted->entries.size(), 30u);
  const int64_t revision_30 = ResourceVersionOf(*states_[leader]->Find({"Service", "default", "svc-30"}).value());

  StartNode(behind);
  ASSERT_TRUE(AllApplied({behind}, states_[leader]->AppliedIndex()));
  // Counted just after the state is in (which AllApplied saw).
  EXPECT_TRUE(WaitFor([&] { return nodes_[behind]->Snapshots().installed == 1; }, 5s));
  EXPECT_TRUE(WaitFor([&] {
    uint64_t sent = 0;
    for (uint64_t id : {1, 2, 3}) sent += nodes_[id]->Snapshots().sent;
    return sent >= 1;
  }, 5s));
  ExpectSameState(leader, behind);
  // The change log came with the state: a watch resumes on the member that was behind.
  auto w = states_[behind]->Watch("Service", revision_30);
  ASSERT_TRUE(w) << w.error().message();
  auto ev = (*w)->Next(std::chrono::seconds(5));
  ASSERT_TRUE(ev && *ev);
  EXPECT_EQ((**ev)->revision, revision_30 + 1);

  // It goes on from the log: writes proposed on it apply everywhere.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Put(behind, Svc("later-" + std::to_string(i), i)).get());
  ASSERT_TRUE(Settled());
  ExpectSameState(leader, behind);
  // And restarted, it comes back from its own disk to the same state.
  StopNode(behind);
  StartNode(behind);
  ASSERT_TRUE(Put(leader, Svc("last", 1)).get());
  ASSERT_TRUE(Settled());
  ExpectSameState(leader, behind);
  EXPECT_EQ(nodes_[behind]->Snapshots().installed, 0u);  // counts since this start
}

// A leader stopped while it sends its state to a member that reads none of it stops at once: the
// send is abandoned rather than waited out (the receiver's answer is given 30 s).
TEST_P(CompactingMembers, StopIsNotHeldByASnapshotSendToAPeerThatReadsNothing) {
  if (!GetParam()) GTEST_SKIP() << "over TCP only: the in-memory transport never blocks";
  uint64_t leader = WaitLeader();
  ASSERT_NE(leader, 0u);
  uint64_t behind = leader == 3 ? 2 : 3;
  StopNode(behind);
  for (int i = 0; i < 60; ++i)
    ASSERT_TRUE(Put(leader, Svc("svc-" + std::to_string(i), i)).get()) << i;
  // Back, `behind` takes the leader's snapshot connection and reads nothing of it until released.
  struct Stall {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false;
    bool released = false;
  };
  auto stall = std::make_shared<Stall>();
  snapshot_handler_[behind] = [stall](uint64_t, const FrameReader&) -> Status {
    std::unique_lock<std::mutex> lock(stall->mu);
    stall->entered = true;
    stall->cv.notify_all();
    stall->cv.wait(lock, [&] { return stall->released; });
    return Unavailable("stalled");
  };
  // Released however the test ends: stopping `behind`'s transport waits for its receiver.
  struct Release {
    std::shared_ptr<Stall> stall;
    ~Release() {
      std::lock_guard<std::mutex> lock(stall->mu);
      stall->released = true;
      stall->cv.notify_all();
    }
  } release{stall};
  StartNode(behind);
  {
    std::unique_lock<std::mutex> lock(stall->mu);
    ASSERT_TRUE(stall->cv.wait_for(lock, 10s, [&] { return stall->entered; }))
        << "no snapshot was sent";
  }
  const auto start = std::chrono::steady_clock::now();
  nodes_[leader]->Stop();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 2s) << "Stop took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  EXPECT_EQ(nodes_[leader]->Snapshots().failed, 1u);  // abandoned, not sent
}

INSTANTIATE_TEST_SUITE_P(Transports, CompactingMembers, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tcp" : "Loopback"; });

// A snapshot stream whose image goes past RaftNodeOptions::max_snapshot_bytes is refused as soon
// as it does, naming the limit, and nothing of it stays on disk; one up to the limit is staged.
TEST(SnapshotLimit, AStreamPastTheLimitIsRefusedAndNothingOfItStays) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/snapshot-limit";
  std::filesystem::remove_all(dir);
  StateMachineOptions so;
  so.dir = dir + "/state";
  auto state = RocksStateMachine::Open(so);
  ASSERT_TRUE(state) << state.error().message();
  testing::Loopback nowhere;
  RaftNodeOptions o;
  o.id = 1;
  o.bootstrap_peers = {1};
  o.snapshot_dir = dir + "/snapshots";
  o.max_snapshot_bytes = 64 << 10;
  auto node = RaftNode::Start(o, **state, nowhere);
  ASSERT_TRUE(node) << node.error().message();
  // A stream of its id, a Raft message and `chunks` pieces of 16 KiB; `served` counts the frames
  // read.
  auto stream = [](const std::string& id, int chunks, size_t& served) -> FrameReader {
    auto frames = std::make_shared<std::vector<std::string>>();
    frames->push_back(Json{{"id", id}}.dump());
    frames->push_back("a raft message");
    for (int i = 0; i < chunks; ++i) frames->push_back(std::string(16 << 10, 'x'));
    return [frames, &served]() -> Result<std::optional<std::string>> {
      if (served == frames->size()) return std::optional<std::string>();
      return std::optional<std::string>((*frames)[served++]);
    };
  };
  size_t served = 0;
  auto refused = (*node)->ReceiveSnapshot(stream("snap-2-x-1", 64, served));  // 1 MiB
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("limit of 65536 bytes"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(served, 2u + 5u);  // refused at the piece that went past the limit
  EXPECT_TRUE(std::filesystem::is_empty(o.snapshot_dir));
  served = 0;
  auto taken = (*node)->ReceiveSnapshot(stream("snap-2-x-2", 4, served));  // 64 KiB: the limit
  ASSERT_TRUE(taken) << taken.error().message();
  EXPECT_EQ(std::filesystem::file_size(o.snapshot_dir + "/snap-2-x-2"), 64u << 10);
  (*node)->Stop();
}

}  // namespace
}  // namespace mentat::raft
