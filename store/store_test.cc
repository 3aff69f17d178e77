// The local store over RocksDB on disk: revisions, generation, conditional writes, watch order and
// resume, persistence across reopen, and slow-watcher protection.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <filesystem>
#include <thread>

#include "store/local_store.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
           "/store-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void Reopen(size_t watcher_buffer = 10000) {
    store_.reset();
    StateMachineOptions o;
    o.dir = dir_;
    o.watcher_buffer = watcher_buffer;
    auto s = OpenLocalStore(o);
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
  }
  static Json Svc(const std::string& name, int count) {
    return {{"kind", "Service"},
            {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", {{"app", name}}}}},
            {"spec", {{"driver", "exec"}, {"count", count}}}};
  }

  // Applies a log entry as a replica does: the decided batch at `index`, then waits until it is
  // durable. Whether it was applied (false: the index was applied before).
  bool ApplyEntry(int64_t index, std::vector<Change> changes) {
    StateMachine& state = store_->state_machine();
    auto applied = state.ApplyAt(index, changes);
    EXPECT_TRUE(applied) << applied.error().ToString();
    if (!applied) return false;
    EXPECT_TRUE(state.WaitDurable(applied->last_revision));
    return applied->applied;
  }

  std::string dir_;
  LocalStorePtr store_;
};

// Drains what a watcher has queued, waiting up to `quiet` for each next event.
std::vector<WatchEventPtr> Drain(Watcher& w, std::chrono::milliseconds quiet = 200ms) {
  std::vector<WatchEventPtr> got;
  while (true) {
    auto ev = w.Next(quiet);
    if (!ev || !ev->has_value()) return got;
    got.push_back(**ev);
  }
}

std::vector<int64_t> RevisionsOf(const std::vector<WatchEventPtr>& events) {
  std::vector<int64_t> revs;
  for (const auto& e : events) revs.push_back(e->revision);
  return revs;
}

TEST_F(StoreTest, RevisionsGenerationAndMetadata) {
  auto a = store_->Put(Svc("a", 1));
  ASSERT_TRUE(a);
  EXPECT_EQ(ResourceVersionOf(*a), 1);
  EXPECT_EQ((*a)["metadata"]["generation"], 1);
  EXPECT_FALSE((*a)["metadata"]["uid"].get<std::string>().empty());
  auto b = store_->Put(Svc("b", 1));
  EXPECT_EQ(ResourceVersionOf(*b), 2);
  // A spec change bumps generation; a label-only change does not; a no-op writes nothing.
  auto a2 = store_->Put(Svc("a", 2));
  EXPECT_EQ(ResourceVersionOf(*a2), 3);
  EXPECT_EQ((*a2)["metadata"]["generation"], 2);
  EXPECT_EQ((*a2)["metadata"]["uid"], (*a)["metadata"]["uid"]);
  Json relabel = Svc("a", 2);
  relabel["metadata"]["labels"]["x"] = "y";
  auto a3 = store_->Put(relabel);
  EXPECT_EQ((*a3)["metadata"]["generation"], 2);
  EXPECT_EQ(ResourceVersionOf(*a3), 4);
  auto same = store_->Put(relabel);
  EXPECT_EQ(ResourceVersionOf(*same), 4);
  EXPECT_EQ(store_->CurrentRevision(), 4);
  // Status is separate from spec writes.
  Json st = *a3;
  st["status"] = {{"phase", "Running"}};
  ASSERT_TRUE(store_->UpdateStatus(st));
  auto after_spec = store_->Put(Svc("a", 3));
  EXPECT_EQ((*after_spec)["status"]["phase"], "Running");
}

TEST_F(StoreTest, ListByNamespaceAndSelectorAtOneRevision) {
  ASSERT_TRUE(store_->Put(Svc("web", 1)));
  ASSERT_TRUE(store_->Put(Svc("db", 1)));
  Json other = Svc("web", 1);
  other["metadata"]["namespace"] = "staging";
  ASSERT_TRUE(store_->Put(other));
  ListOptions all;
  EXPECT_EQ(store_->List("Service", all)->items.size(), 3u);
  ListOptions ns;
  ns.ns = "default";
  auto l = store_->List("Service", ns);
  EXPECT_EQ(l->items.size(), 2u);
  EXPECT_EQ(l->revision, 3);
  ListOptions sel;
  sel.selector = *LabelSelector::Parse("app=web");
  EXPECT_EQ(store_->List("Service", sel)->items.size(), 2u);
  EXPECT_EQ(store_->List("Allocation", all)->items.size(), 0u);
}

TEST_F(StoreTest, PagesOfAListShareOneRevision) {
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(store_->Put(Svc("s" + std::to_string(100 + i), 1)));
  ListOptions o;
  o.limit = 10;
  auto p1 = store_->List("Service", o);
  ASSERT_TRUE(p1);
  EXPECT_EQ(p1->items.size(), 10u);
  ASSERT_FALSE(p1->continue_token.empty());
  // Writes between pages are not seen by the rest of this list.
  ASSERT_TRUE(store_->Put(Svc("s199", 1)));
  ASSERT_TRUE(store_->Delete({"Service", "default", "s124"}));
  o.continue_token = p1->continue_token;
  auto p2 = store_->List("Service", o);
  ASSERT_TRUE(p2) << p2.error().ToString();
  EXPECT_EQ(p2->revision, p1->revision);
  o.continue_token = p2->continue_token;
  auto p3 = store_->List("Service", o);
  ASSERT_TRUE(p3);
  EXPECT_EQ(p3->items.size(), 5u);
  EXPECT_TRUE(p3->continue_token.empty());
  std::set<std::string> names;
  for (const auto* p : {&*p1, &*p2, &*p3}) {
    for (const auto& i : p->items) names.insert(NameOf(i));
  }
  EXPECT_EQ(names.size(), 25u);
  EXPECT_TRUE(names.count("s124"));
  EXPECT_FALSE(names.count("s199"));
  ListOptions bad;
  bad.continue_token = "zz";
  EXPECT_EQ(store_->List("Service", bad).error().code(), Code::kInvalidArgument);
}

TEST_F(StoreTest, ConditionalWritesDetectConflicts) {
  auto a = store_->Put(Svc("a", 1));
  WriteOptions stale;
  stale.expected_revision = ResourceVersionOf(*a);
  ASSERT_TRUE(store_->Put(Svc("a", 2), stale));
  auto conflict = store_->Put(Svc("a", 3), stale);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code(), Code::kConflict);
  EXPECT_EQ(conflict.error().HttpStatus(), 409);
  WriteOptions create;
  create.create_only = true;
  EXPECT_EQ(store_->Put(Svc("a", 1), create).error().code(), Code::kAlreadyExists);
}

TEST_F(StoreTest, ConcurrentConditionalUpdatesNeverBothWin) {
  auto base = store_->Put(Svc("a", 1));
  for (int round = 0; round < 50; ++round) {
    auto cur = store_->Get({"Service", "default", "a"});
    int64_t rv = ResourceVersionOf(*cur);
    std::atomic<int> wins{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        WriteOptions o;
        o.expected_revision = rv;
        if (store_->Put(Svc("a", 100 + round * 10 + t), o)) wins++;
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wins.load(), 1) << "round " << round;
  }
}

TEST_F(StoreTest, WatchDeliversEveryChangeInOrderAndResumes) {
  auto w = store_->Watch("Service", 0);
  ASSERT_TRUE(w);
  ASSERT_TRUE(store_->Put(Svc("a", 1)));
  ASSERT_TRUE(store_->Put(Svc("a", 2)));
  ASSERT_TRUE(store_->Put({{"kind", "Node"}, {"metadata", {{"name", "n"}}}, {"spec", {}}}));
  ASSERT_TRUE(store_->Delete({"Service", "default", "a"}));
  std::vector<std::pair<EventType, int64_t>> got;
  while (got.size() < 3) {
    auto ev = (*w)->Next(2s);
    ASSERT_TRUE(ev);
    ASSERT_TRUE(ev->has_value()) << "timed out after " << got.size() << " events";
    got.emplace_back((**ev)->type, (**ev)->revision);
  }
  EXPECT_EQ(got[0], std::make_pair(EventType::kAdded, int64_t{1}));
  EXPECT_EQ(got[1], std::make_pair(EventType::kModified, int64_t{2}));
  EXPECT_EQ(got[2], std::make_pair(EventType::kDeleted, int64_t{4}));  // the Node is filtered

  // Resume from a recorded revision after a restart: exactly the changes since then.
  Reopen();
  ASSERT_TRUE(store_->Put(Svc("b", 1)));
  auto resumed = store_->Watch("", 2);
  ASSERT_TRUE(resumed);
  std::vector<int64_t> revs;
  while (true) {
    auto ev = (*resumed)->Next(100ms);
    ASSERT_TRUE(ev);
    if (!ev->has_value()) break;
    revs.push_back((**ev)->revision);
  }
  EXPECT_EQ(revs, (std::vector<int64_t>{3, 4, 5}));
}

TEST_F(StoreTest, CompactedHistoryGivesGoneAndTheRestStillResumes) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->Put(Svc("s" + std::to_string(i), 1)));
  ASSERT_TRUE(store_->Compact(10));
  auto gone = store_->Watch("", 5);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), Code::kGone);
  EXPECT_EQ(gone.error().HttpStatus(), 410);
  auto w = store_->Watch("", 10);
  ASSERT_TRUE(w) << w.error().ToString();
  std::vector<int64_t> revs;
  while (true) {
    auto ev = (*w)->Next(100ms);
    ASSERT_TRUE(ev);
    if (!ev->has_value()) break;
    revs.push_back((**ev)->revision);
  }
  ASSERT_EQ(revs.size(), 10u);
  EXPECT_EQ(revs.front(), 11);
  // The mark survives a restart; objects are untouched by compaction.
  Reopen();
  EXPECT_EQ(store_->compactor().CompactedRevision(), 10);
  EXPECT_FALSE(store_->Watch("", 9));
  EXPECT_EQ(store_->List("Service", {})->items.size(), 20u);
}

TEST_F(StoreTest, CompactionKeepsTheWindow) {
  store_.reset();
  StateMachineOptions o;
  o.dir = dir_;
  o.history_revisions = 5;
  o.history_age = std::chrono::seconds(0);
  store_ = std::move(*OpenLocalStore(o));
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(store_->Put(Svc("s" + std::to_string(i), 1)));
  auto c = store_->compactor().CompactToWindow();
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, 7);  // revisions 8..12 remain
  // With a time window, recent revisions are kept even past the revision count.
  store_.reset();
  o.history_age = std::chrono::seconds(300);
  store_ = std::move(*OpenLocalStore(o));
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(store_->Put(Svc("t" + std::to_string(i), 1)));
  auto kept = store_->compactor().CompactToWindow();
  ASSERT_TRUE(kept);
  EXPECT_EQ(*kept, 7) << "nothing younger than 5 minutes may be compacted";
}

TEST_F(StoreTest, GroupCommitDeliversEveryWriteOnceInOrder) {
  auto w = store_->Watch("", store_->CurrentRevision());
  ASSERT_TRUE(w);
  std::vector<std::thread> writers;
  std::atomic<int> acked{0};
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (store_->Put(Svc("g" + std::to_string(t) + "-" + std::to_string(i), 1))) acked++;
      }
    });
  }
  // A second watcher joins while writes land, from a revision it read: it must see exactly the
  // rest, wherever that is.
  int64_t mid = store_->CurrentRevision();
  auto w2 = store_->Watch("", mid);
  ASSERT_TRUE(w2);
  for (auto& th : writers) th.join();
  EXPECT_EQ(acked.load(), 1600);
  auto revs = RevisionsOf(Drain(**w));
  ASSERT_EQ(revs.size(), 1600u);
  for (size_t i = 0; i < revs.size(); ++i) EXPECT_EQ(revs[i], static_cast<int64_t>(i + 1));
  auto revs2 = RevisionsOf(Drain(**w2));
  ASSERT_EQ(revs2.size(), static_cast<size_t>(1600 - mid));
  if (!revs2.empty()) {
    EXPECT_EQ(revs2.front(), mid + 1);
  }
  // Everything acknowledged is durable: it survives a reopen.
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 1600);
}

// Issue 17: one apply of three objects, a watcher that read the first event and resumed from
// its resourceVersion must still get the other two.
TEST_F(StoreTest, TxnGivesEachObjectItsOwnRevisionAndAResumeFromAnyOfThemIsExact) {
  ASSERT_TRUE(store_->Put(Svc("before", 1)));
  int64_t r = store_->CurrentRevision();
  auto w = store_->Watch("Service", r);
  ASSERT_TRUE(w);
  auto results = store_->Txn({Svc("a", 1), Svc("b", 1), Svc("c", 1)}, /*dry_run=*/false);
  ASSERT_TRUE(results) << results.error().ToString();
  ASSERT_EQ(results->size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ResourceVersionOf((*results)[i].object), r + 1 + i);
  EXPECT_EQ(store_->CurrentRevision(), r + 3);
  auto events = Drain(**w);
  ASSERT_EQ(RevisionsOf(events), (std::vector<int64_t>{r + 1, r + 2, r + 3}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(events[i]->type, EventType::kAdded);
    EXPECT_EQ(NameOf(events[i]->object), std::string(1, static_cast<char>('a' + i)));
    EXPECT_EQ(ResourceVersionOf(events[i]->object), events[i]->revision);
  }
  // Resumed from before the transaction or from any of its events: exactly the later ones.
  for (int64_t from = r; from <= r + 3; ++from) {
    auto resumed = store_->Watch("Service", from);
    ASSERT_TRUE(resumed);
    std::vector<int64_t> later;
    for (int64_t rev = from + 1; rev <= r + 3; ++rev) later.push_back(rev);
    EXPECT_EQ(RevisionsOf(Drain(**resumed, 50ms)), later) << "resumed from " << from;
  }
  // Deletes in a transaction follow its puts, each at a revision of its own; from the change
  // log after a restart, and with the history compacted to the middle of the transaction, a
  // resume from the middle is exact too.
  auto mixed = store_->Txn({Svc("d", 1), Svc("a", 2)}, false,
                           {{"Service", "default", "b"}, {"Service", "default", "c"}});
  ASSERT_TRUE(mixed) << mixed.error().ToString();
  EXPECT_EQ(store_->CurrentRevision(), r + 7);
  Reopen();
  ASSERT_TRUE(store_->Compact(r + 5));
  EXPECT_EQ(store_->Watch("Service", r + 4).error().code(), Code::kGone);
  auto replayed = store_->Watch("Service", r + 5);
  ASSERT_TRUE(replayed);
  auto tail = Drain(**replayed);
  ASSERT_EQ(RevisionsOf(tail), (std::vector<int64_t>{r + 6, r + 7}));
  EXPECT_EQ(tail[0]->type, EventType::kDeleted);
  EXPECT_EQ(NameOf(tail[0]->object), "b");
  EXPECT_EQ(NameOf(tail[1]->object), "c");
}

TEST_F(StoreTest, TxnDryRunWritesNothingAndShowsTheRevisionsItWouldTake) {
  ASSERT_TRUE(store_->Put(Svc("a", 1)));
  int64_t r = store_->CurrentRevision();
  auto w = store_->Watch("", r);
  ASSERT_TRUE(w);
  auto dry = store_->Txn({Svc("a", 2), Svc("b", 1), Svc("c", 1)}, /*dry_run=*/true);
  ASSERT_TRUE(dry) << dry.error().ToString();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ResourceVersionOf((*dry)[i].object), r + 1 + i);
  EXPECT_EQ(store_->CurrentRevision(), r);
  EXPECT_EQ(store_->Get({"Service", "default", "b"}).error().code(), Code::kNotFound);
  EXPECT_EQ((*store_->Get({"Service", "default", "a"}))["spec"]["count"], 1);
  EXPECT_TRUE(Drain(**w, 100ms).empty()) << "a dry run published an event";
  // The next real write takes the next revision: the dry run used none.
  EXPECT_EQ(ResourceVersionOf(*store_->Put(Svc("d", 1))), r + 1);
}

TEST_F(StoreTest, TxnThatFailsItsConditionLeavesTheRevisionUnchanged) {
  auto a = store_->Put(Svc("a", 1));
  ASSERT_TRUE(a);
  ASSERT_TRUE(store_->Put(Svc("a", 2)));  // now `*a`'s resourceVersion is stale
  int64_t r = store_->CurrentRevision();
  auto w = store_->Watch("", r);
  ASSERT_TRUE(w);
  Json stale = Svc("a", 3);
  stale["metadata"]["resourceVersion"] = std::to_string(ResourceVersionOf(*a));
  auto failed = store_->Txn({Svc("b", 1), Svc("c", 1), stale}, /*dry_run=*/false);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), Code::kConflict);
  EXPECT_EQ(store_->CurrentRevision(), r);
  EXPECT_EQ(store_->Get({"Service", "default", "b"}).error().code(), Code::kNotFound);
  EXPECT_TRUE(Drain(**w, 100ms).empty()) << "a failed transaction published an event";
  // The same transaction with a current version takes the next three revisions, no gap.
  stale["metadata"]["resourceVersion"] = std::to_string(r);
  auto ok = store_->Txn({Svc("b", 1), Svc("c", 1), stale}, false);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(RevisionsOf(Drain(**w)), (std::vector<int64_t>{r + 1, r + 2, r + 3}));
}

TEST_F(StoreTest, FinalizersBlockDeletionUntilRemoved) {
  Json svc = Svc("f", 1);
  svc["metadata"]["finalizers"] = {"mentat.io/allocations", "example.com/backup"};
  ASSERT_TRUE(store_->Put(svc));
  auto marked = store_->Delete({"Service", "default", "f"});
  ASSERT_TRUE(marked);
  EXPECT_TRUE((*marked)["metadata"].contains("deletionTimestamp"));
  auto still = store_->Get({"Service", "default", "f"});
  ASSERT_TRUE(still) << "an object with finalizers must stay until they are removed";
  // A finalizer cannot be added while deleting.
  Json more = *still;
  more["metadata"]["finalizers"].push_back("late.example/x");
  EXPECT_EQ(store_->Put(more).error().code(), Code::kFailedPrecondition);
  // Removing one keeps it; removing the last deletes it.
  Json one = *still;
  one["metadata"]["finalizers"] = {"example.com/backup"};
  ASSERT_TRUE(store_->Put(one));
  ASSERT_TRUE(store_->Get({"Service", "default", "f"}));
  auto w = store_->Watch("", store_->CurrentRevision());
  Json none = one;
  none["metadata"]["finalizers"] = Json::array();
  ASSERT_TRUE(store_->Put(none));
  EXPECT_EQ(store_->Get({"Service", "default", "f"}).error().code(), Code::kNotFound);
  auto ev = (*w)->Next(1s);
  ASSERT_TRUE(ev && ev->has_value());
  EXPECT_EQ((**ev)->type, EventType::kDeleted);
}

TEST_F(StoreTest, ApplyAtIndexIsIdempotentForLogReplay) {
  auto M = [](EventType type, const Json& obj) { return Change{KeyOf(obj), type, obj}; };
  Json a = Svc("a", 1);
  a["metadata"]["uid"] = "u-a";
  ASSERT_TRUE(ApplyEntry(5, {M(EventType::kAdded, a)}));
  EXPECT_EQ(store_->state_machine().AppliedIndex(), 5);
  EXPECT_EQ(store_->CurrentRevision(), 1);
  EXPECT_EQ(ResourceVersionOf(*store_->Get({"Service", "default", "a"})), 1);
  // Replaying the same index (after a crash, say) changes nothing.
  Json changed = Svc("a", 9);
  EXPECT_FALSE(ApplyEntry(5, {M(EventType::kModified, changed)}));
  EXPECT_EQ((*store_->Get({"Service", "default", "a"}))["spec"]["count"], 1);
  // One entry is one transaction: its objects take consecutive revisions.
  ASSERT_TRUE(
      ApplyEntry(6, {M(EventType::kAdded, Svc("b", 1)), M(EventType::kAdded, Svc("c", 1))}));
  EXPECT_EQ(ResourceVersionOf(*store_->Get({"Service", "default", "c"})), 3);
  // The applied index survives a restart, in the same batch as the data; a no-op entry moves
  // it without taking a revision.
  ASSERT_TRUE(ApplyEntry(7, {M(EventType::kDeleted, a)}));
  ASSERT_TRUE(ApplyEntry(8, {}));
  EXPECT_EQ(store_->CurrentRevision(), 4);
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 4);
  EXPECT_GE(store_->state_machine().AppliedIndex(), 7);
  EXPECT_FALSE(store_->Get({"Service", "default", "a"}));
  EXPECT_FALSE(ApplyEntry(6, {M(EventType::kAdded, a)}));
  // Local writes continue after the last revision.
  auto d = store_->Put(Svc("d", 1));
  EXPECT_EQ(ResourceVersionOf(*d), 5);
}

TEST_F(StoreTest, WatchFromTheFutureIsRefused) {
  ASSERT_TRUE(store_->Put(Svc("a", 1)));
  auto w = store_->Watch("", 99);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), Code::kInvalidArgument);
}

TEST_F(StoreTest, SlowWatcherIsClosedNotBuffered) {
  Reopen(/*watcher_buffer=*/10);
  auto w = store_->Watch("", 0);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->Put(Svc("s" + std::to_string(i), 1)));
  // Writers were never blocked; the reader learns it must re-list.
  auto ev = (*w)->Next(100ms);
  ASSERT_FALSE(ev);
  EXPECT_EQ(ev.error().code(), Code::kGone);
  EXPECT_NE(ev.error().message().find("re-list"), std::string::npos);
}

TEST_F(StoreTest, DataSurvivesReopen) {
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store_->Put(Svc("s" + std::to_string(i), i)));
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 100);
  auto got = store_->Get({"Service", "default", "s42"});
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)["spec"]["count"], 42);
  EXPECT_EQ(store_->List("Service", {})->items.size(), 100u);
}

TEST_F(StoreTest, SecondOpenOfTheSameDirIsRefusedClearly) {
  StateMachineOptions o;
  o.dir = dir_;
  auto second = OpenLocalStore(o);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("in use"), std::string::npos);
}

}  // namespace
}  // namespace mentat
