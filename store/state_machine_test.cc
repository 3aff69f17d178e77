// The seam a replicated store relies on: the object layer decides a write against a read view,
// and the state machine applies the decided batch, giving it the next revisions and publishing
// its events. Applying the same batches to two fresh state machines yields the same state.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "store/object_layer.h"
#include "store/rocksdb_state_machine.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

std::string TestDir(const std::string& suffix) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
                    "/sm-" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
                    suffix;
  std::filesystem::remove_all(dir);
  return dir;
}

std::unique_ptr<RocksStateMachine> OpenStateMachine(const std::string& dir) {
  StateMachineOptions o;
  o.dir = dir;
  auto sm = RocksStateMachine::Open(o);
  EXPECT_TRUE(sm) << sm.error().ToString();
  return sm ? std::move(*sm) : nullptr;
}

Json Svc(const std::string& name, int count) {
  return {{"kind", "Service"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"driver", "exec"}, {"count", count}}}};
}

// The object layer's read view over a map: no store at all.
class MapReader : public ObjectReader {
 public:
  Result<std::optional<Json>> Find(const ObjectKey& key) override {
    auto it = objects.find(StoreKey(key));
    if (it == objects.end()) return std::optional<Json>();
    return std::optional<Json>(it->second);
  }
  std::map<std::string, Json> objects;
};

// Applies `changes` at `index` (filling in their revisions and text) and waits until they are
// durable; returns the last revision.
int64_t ApplyDurably(StateMachine& sm, int64_t index, std::vector<Change>& changes) {
  auto applied = sm.ApplyAt(index, changes);
  EXPECT_TRUE(applied) << applied.error().ToString();
  if (!applied) return 0;
  EXPECT_TRUE(applied->applied);
  EXPECT_TRUE(sm.WaitDurable(applied->last_revision));
  return applied->last_revision;
}

TEST(ObjectLayerTest, DecidesOverAReadViewWithoutRevisions) {
  MapReader reader;
  Json current;
  auto created = PreparePut(reader, Svc("a", 1), {}, &current);
  ASSERT_TRUE(created && *created);
  EXPECT_EQ((*created)->type, EventType::kAdded);
  EXPECT_EQ((*created)->object["metadata"]["generation"], 1);
  EXPECT_FALSE((*created)->object["metadata"].contains("resourceVersion"));
  // As stored at revision 7, a label-only change keeps the generation; a spec change bumps it.
  Json stored = (*created)->object;
  stored["metadata"]["resourceVersion"] = "7";
  reader.objects[StoreKey(KeyOf(stored))] = stored;
  Json relabel = Svc("a", 1);
  relabel["metadata"]["labels"] = {{"x", "y"}};
  auto relabeled = PreparePut(reader, relabel, {}, &current);
  ASSERT_TRUE(relabeled && *relabeled);
  EXPECT_EQ((*relabeled)->object["metadata"]["generation"], 1);
  EXPECT_EQ((*relabeled)->object["metadata"]["uid"], stored["metadata"]["uid"]);
  auto respec = PreparePut(reader, Svc("a", 2), {}, &current);
  EXPECT_EQ((*respec)->object["metadata"]["generation"], 2);
  // The unchanged object writes nothing; a stale condition is a conflict.
  auto same = PreparePut(reader, Svc("a", 1), {}, &current);
  ASSERT_TRUE(same);
  EXPECT_FALSE(*same);
  EXPECT_EQ(ResourceVersionOf(current), 7);
  WriteOptions stale;
  stale.expected_revision = 6;
  EXPECT_EQ(PreparePut(reader, Svc("a", 3), stale, &current).error().code(), Code::kConflict);
}

TEST(StateMachineTest, ApplyAtPublishesEventsAtTheRevisionsItGives) {
  auto sm = OpenStateMachine(TestDir("a"));
  ASSERT_TRUE(sm);
  std::vector<Change> first = {{KeyOf(Svc("x", 1)), EventType::kAdded, Svc("x", 1)}};
  ASSERT_EQ(ApplyDurably(*sm, 3, first), 1);
  auto w = sm->Watch("Service", sm->CurrentRevision());
  ASSERT_TRUE(w);
  EXPECT_EQ(*sm->NextRevision(), 2);
  std::vector<Change> batch = {{KeyOf(Svc("a", 1)), EventType::kAdded, Svc("a", 1)},
                               {KeyOf(Svc("x", 1)), EventType::kDeleted, Svc("x", 1)}};
  EXPECT_EQ(ApplyDurably(*sm, 4, batch), 3);
  EXPECT_EQ(sm->AppliedIndex(), 4);
  // The batch's objects carry their revisions, as stored and as each event's object.
  EXPECT_EQ(ResourceVersionOf(batch[0].object), 2);
  EXPECT_EQ(Json::parse(batch[0].json), batch[0].object);
  for (int64_t rev : {2, 3}) {
    auto ev = (*w)->Next(2s);
    ASSERT_TRUE(ev && ev->has_value()) << "no event at revision " << rev;
    EXPECT_EQ((**ev)->revision, rev);
    EXPECT_EQ(ResourceVersionOf((**ev)->object), rev);
    EXPECT_EQ((**ev)->type, rev == 2 ? EventType::kAdded : EventType::kDeleted);
  }
  EXPECT_TRUE((*sm->Find(KeyOf(Svc("a", 1)))).has_value());
  EXPECT_FALSE((*sm->Find(KeyOf(Svc("x", 1)))).has_value());
}

// A write at a log index is durable through the log that replays it: its event goes out and its
// waiters complete when the node publishes its batch, without a sync of the state's own. A
// local write waits for its sync.
TEST(StateMachineTest, WritesAtLogIndexesArePublishedByTheBatchALocalOneAfterItsSync) {
  auto sm = OpenStateMachine(TestDir("published"));
  ASSERT_TRUE(sm);
  auto w = sm->Watch("Service", 0);
  ASSERT_TRUE(w);
  std::vector<Change> local = {{KeyOf(Svc("local", 1)), EventType::kAdded, Svc("local", 1)}};
  auto applied = sm->ApplyAt(StateMachine::kLocalWrite, local);
  ASSERT_TRUE(applied);
  auto none = (*w)->Next(200ms);
  EXPECT_TRUE(none && !none->has_value()) << "a local write was published before its sync";
  ASSERT_TRUE(sm->WaitDurable(applied->last_revision));
  auto ev = (*w)->Next(2s);
  ASSERT_TRUE(ev && ev->has_value());
  EXPECT_EQ((**ev)->revision, 1);

  // Two writes at log indexes: out together when the node publishes its batch.
  std::vector<Change> logged = {{KeyOf(Svc("logged", 1)), EventType::kAdded, Svc("logged", 1)}};
  std::vector<Change> more = {{KeyOf(Svc("more", 1)), EventType::kAdded, Svc("more", 1)}};
  ASSERT_TRUE(sm->ApplyAt(5, logged));
  applied = sm->ApplyAt(6, more);
  ASSERT_TRUE(applied);
  std::atomic<bool> done = false;
  sm->WhenDurable(applied->last_revision, [&](Status st) { done = st.has_value(); });
  EXPECT_FALSE(done);
  sm->PublishApplied();
  EXPECT_TRUE(done) << "PublishApplied did not complete the waiter";
  for (int64_t rev : {2, 3}) {
    ev = (*w)->Next(0ms);
    ASSERT_TRUE(ev && ev->has_value()) << "revision " << rev << " was not published";
    EXPECT_EQ((**ev)->revision, rev);
  }
}

TEST(StateMachineTest, TheSameBatchesOnTwoFreshStateMachinesGiveTheSameState) {
  auto leader = OpenStateMachine(TestDir("leader"));
  auto follower = OpenStateMachine(TestDir("follower"));
  ASSERT_TRUE(leader && follower);
  auto leader_watch = leader->Watch("", 0);
  auto follower_watch = follower->Watch("", 0);
  ASSERT_TRUE(leader_watch && follower_watch);
  // The leader decides each write against its own state (uids and timestamps are chosen here,
  // once), and every node applies the decided batch at the entry's index.
  std::vector<std::vector<Json>> writes = {
      {Svc("a", 1), Svc("b", 1)}, {Svc("a", 2)}, {Svc("c", 1)}};
  int64_t index = 10;
  for (const auto& puts : writes) {
    auto plan = PrepareTxn(*leader, puts, {});
    ASSERT_TRUE(plan) << plan.error().ToString();
    std::vector<Change> copy = plan->changes;
    ApplyDurably(*leader, index, plan->changes);
    ApplyDurably(*follower, index, copy);
    ++index;
  }
  auto plan = PrepareTxn(*leader, {}, {KeyOf(Svc("b", 1))});
  ASSERT_TRUE(plan);
  std::vector<Change> copy = plan->changes;
  ApplyDurably(*leader, index, plan->changes);
  ApplyDurably(*follower, index, copy);

  EXPECT_EQ(leader->CurrentRevision(), 5);
  EXPECT_EQ(follower->CurrentRevision(), leader->CurrentRevision());
  EXPECT_EQ(follower->AppliedIndex(), leader->AppliedIndex());
  std::vector<Json> on_leader, on_follower;
  EXPECT_EQ(*leader->ExportAll(&on_leader), *follower->ExportAll(&on_follower));
  EXPECT_EQ(on_leader.size(), 2u);
  EXPECT_EQ(on_leader, on_follower);
  // Watchers on either node hear the same events, text for text.
  for (int i = 0; i < 5; ++i) {
    auto a = (*leader_watch)->Next(2s);
    auto b = (*follower_watch)->Next(2s);
    ASSERT_TRUE(a && a->has_value() && b && b->has_value()) << "event " << i;
    EXPECT_EQ((**a)->revision, (**b)->revision);
    EXPECT_EQ(*(**a)->json, *(**b)->json);
  }
}

// Writes `sm`'s whole state as an image to a file; returns its path.
std::string WriteImageFile(RocksStateMachine& sm, const std::string& path, size_t chunk) {
  auto pinned = sm.PinState();
  std::ofstream out(path, std::ios::binary);
  int pieces = 0;
  auto st = sm.WriteImage(pinned, chunk, [&](std::string_view bytes) -> Status {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ++pieces;
    return {};
  });
  sm.ReleaseState(pinned);
  EXPECT_TRUE(st) << st.error().ToString();
  EXPECT_GT(pieces, 1) << "a small chunk size gives several pieces";
  return path;
}

TEST(StateImageTest, AnImageInstalledElsewhereGivesTheSameStateHistoryAndMarks) {
  auto leader = OpenStateMachine(TestDir("leader"));
  const std::string follower_dir = TestDir("follower");
  auto follower = OpenStateMachine(follower_dir);
  ASSERT_TRUE(leader && follower);
  // The follower has an older state of its own, with an object the leader deleted since.
  for (int64_t index = 1; index <= 3; ++index) {
    auto plan = PrepareTxn(*leader, {Svc("s" + std::to_string(index), 1)}, {});
    ASSERT_TRUE(plan);
    std::vector<Change> copy = plan->changes;
    ApplyDurably(*leader, index, plan->changes);
    ApplyDurably(*follower, index, copy);
  }
  auto follower_watch = follower->Watch("", 0);
  ASSERT_TRUE(follower_watch);
  auto plan = PrepareTxn(*leader, {Svc("s4", 1)}, {KeyOf(Svc("s1", 1))});
  ASSERT_TRUE(plan);
  ApplyDurably(*leader, 7, plan->changes);
  ASSERT_TRUE(leader->Compact(2));
  // Pinned before a later write: the image is the state at index 7, not after.
  auto pinned = leader->PinState();
  auto later = PrepareTxn(*leader, {Svc("s5", 1)}, {});
  ApplyDurably(*leader, 8, later->changes);
  std::string path = TestDir("image");
  {
    std::ofstream out(path, std::ios::binary);
    ASSERT_TRUE(leader->WriteImage(pinned, 64, [&](std::string_view b) -> Status {
      out.write(b.data(), static_cast<std::streamsize>(b.size()));
      return {};
    }));
  }
  leader->ReleaseState(pinned);

  ASSERT_TRUE(follower->InstallImage(path));
  EXPECT_EQ(follower->AppliedIndex(), 7);
  EXPECT_EQ(follower->CurrentRevision(), 5);
  EXPECT_EQ(follower->CompactedRevision(), 2);
  auto listed = follower->List("Service", {});
  ASSERT_TRUE(listed);
  std::vector<std::string> names;
  for (const auto& o : listed->items) names.push_back(o["metadata"]["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"s2", "s3", "s4"}));
  // A watch open across the install is closed (its events would skip); a new one resumes from
  // the change log the image carried.
  for (;;) {
    auto ev = (*follower_watch)->Next(2s);
    if (!ev) break;
    ASSERT_TRUE(ev->has_value()) << "the watch must end, not go quiet";
  }
  auto w = follower->Watch("", 3);
  ASSERT_TRUE(w) << w.error().ToString();
  std::vector<int64_t> revisions;
  for (int i = 0; i < 2; ++i) {
    auto ev = (*w)->Next(2s);
    ASSERT_TRUE(ev && ev->has_value());
    revisions.push_back((**ev)->revision);
  }
  EXPECT_EQ(revisions, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(follower->Watch("", 1).error().code(), Code::kGone);
  // It is on disk: reopened, the member is where the image put it.
  follower.reset();
  follower = OpenStateMachine(follower_dir);
  ASSERT_TRUE(follower);
  EXPECT_EQ(follower->AppliedIndex(), 7);
  EXPECT_EQ(follower->CurrentRevision(), 5);
  EXPECT_EQ(follower->CompactedRevision(), 2);
}

TEST(StateImageTest, ATruncatedOrCorruptedImageIsRefusedWholeAndChangesNothing) {
  auto leader = OpenStateMachine(TestDir("leader"));
  auto follower = OpenStateMachine(TestDir("follower"));
  ASSERT_TRUE(leader && follower);
  for (int64_t index = 1; index <= 5; ++index) {
    auto plan = PrepareTxn(*leader, {Svc("s" + std::to_string(index), 1)}, {});
    ASSERT_TRUE(plan);
    ApplyDurably(*leader, index, plan->changes);
  }
  auto mine = PrepareTxn(*follower, {Svc("mine", 1)}, {});
  ApplyDurably(*follower, 1, mine->changes);
  std::string path = WriteImageFile(*leader, TestDir("image"), 100);
  std::ifstream in(path, std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  };
  std::string flipped = whole;
  flipped[whole.size() / 2] ^= 0x20;
  for (const auto& bad : {whole.substr(0, whole.size() / 2), whole.substr(0, whole.size() - 1), flipped,
                          std::string()}) {
    write(bad);
    auto st = follower->InstallImage(path);
    ASSERT_FALSE(st) << bad.size() << " bytes";
    EXPECT_EQ(st.error().code(), Code::kInvalidArgument) << st.error().message();
    EXPECT_NE(st.error().message().find(path), std::string::npos) << st.error().message();
    EXPECT_EQ(follower->AppliedIndex(), 1);
    EXPECT_TRUE(follower->Find(KeyOf(Svc("mine", 1)))->has_value());
  }
  write(whole);
  ASSERT_TRUE(follower->InstallImage(path));
  EXPECT_EQ(follower->AppliedIndex(), 5);
  EXPECT_FALSE(follower->Find(KeyOf(Svc("mine", 1)))->has_value());
}

// A full disk: the store on a tmpfs of 4 MiB, filled to the last byte with a file. A write that
// cannot be synced fails with RocksDB's error, and the store refuses the writes after it, but
// the process lives on to say so: Debian's RocksDB keeps its assertions, and it aborted the
// process when it logged to its own LOG file, on the same full disk, after a write there had
// failed. With room again, the store reopens with all that was durable.
TEST(StateMachineTest, AFullDiskFailsWritesWithoutTakingTheProcessDown) {
  const std::string dir = TestDir("full");
  std::filesystem::create_directories(dir);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=4m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): root is needed";
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{dir};
  {
    auto sm = OpenStateMachine(dir + "/store");
    ASSERT_TRUE(sm);
    std::vector<Change> before = {{KeyOf(Svc("before", 1)), EventType::kAdded, Svc("before", 1)}};
    ASSERT_EQ(ApplyDurably(*sm, StateMachine::kLocalWrite, before), 1);
    int fd = ::open((dir + "/fill").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const std::string zeros(1 << 16, '\0');
    for (size_t chunk = zeros.size(); chunk > 0; chunk /= 2) {
      while (::write(fd, zeros.data(), chunk) > 0) {
      }
    }
    ::close(fd);
    Status failed;
    for (int i = 0; failed && i < 100; ++i) {
      const Json svc = Svc("s" + std::to_string(i), i);
      std::vector<Change> more = {{KeyOf(svc), EventType::kAdded, svc}};
      // Local writes: a write at a log index is durable through the log, which syncs it.
      auto applied = sm->ApplyAt(StateMachine::kLocalWrite, more);
      failed = applied ? sm->WaitDurable(applied->last_revision) : Status(std::unexpected(applied.error()));
    }
    ASSERT_FALSE(failed) << "100 writes were synced on a full disk";
    EXPECT_NE(failed.error().message().find("No space left on device"), std::string::npos)
        << failed.error().message();
    std::vector<Change> after = {{KeyOf(Svc("after", 1)), EventType::kAdded, Svc("after", 1)}};
    EXPECT_FALSE(sm->ApplyAt(StateMachine::kLocalWrite, after));
    std::filesystem::remove(dir + "/fill");
  }
  auto sm = OpenStateMachine(dir + "/store");
  ASSERT_TRUE(sm);
  EXPECT_TRUE(sm->Find(KeyOf(Svc("before", 1)))->has_value());
  EXPECT_FALSE(sm->Find(KeyOf(Svc("after", 1)))->has_value());
}

}  // namespace
}  // namespace mentat
