// The ControllerManager against a real RocksDB store on disk: registered controllers, retries
// by error code, the leader gate and periodic runnables. Waits are on conditions with
// deadlines, never sleeps.
#include "controllers/manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <map>

#include "controllers/registry.h"
#include "apis/service.h"
#include "controllers/retry_policy.h"
#include "store/local_store.h"

namespace mentat {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPatience = std::chrono::seconds(10);

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/mgr-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto s = OpenLocalStore({dir_, false});
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
  }

  // Whether the widget's status is the test controller's, for its current spec.
  static bool Reconciled(const Json& widget) {
    const int size = widget["spec"].value("size", 0);
    const Json& status = widget.value("status", Json::object());
    return status.value("area", -1) == size * size &&
           status.value("observedGeneration", int64_t{-1}) == widget["metadata"].value("generation", int64_t{0});
  }

  // Waits until the widget `name` carries the test controller's status: as read now, or as a
  // watch from then shows it.
  bool WaitForStatus(const std::string& name) {
    const int64_t from = store_->CurrentRevision();
    if (auto now = store_->Get({"Widget", "default", name}); now && Reconciled(*now)) return true;
    auto w = store_->Watch("Widget", from);
    if (!w) return false;
    auto deadline = Clock::now() + kPatience;
    while (Clock::now() < deadline) {
      auto ev = (*w)->Next(std::chrono::milliseconds(100));
      if (!ev) return false;
      if (ev->has_value() && NameOf((**ev)->object) == name && Reconciled((**ev)->object)) return true;
    }
    return false;
  }

  std::string dir_;
  LocalStorePtr store_;
};

// A Widget (the test-only kind of apis/testing/widget_kind.cc) as its own steps make it.
Json Widget(const std::string& name, int size) {
  auto w = NormalizeManifestText("kind: Widget\nmetadata: {name: " + name + "}\nspec: {size: " +
                                 std::to_string(size) + "}\n");
  EXPECT_TRUE(w) << w.error().ToString();
  return w ? *w : Json();
}

TEST_F(ManagerTest, AControllerRegisteredFromItsOwnFileReconcilesThroughTheManager) {
  auto names = ControllerRegistry::Global().Names();
  ASSERT_NE(std::find(names.begin(), names.end(), "test_widget_status"), names.end());
  ASSERT_TRUE(store_->Put(Widget("before-start", 2)));

  ControllerManager manager(store_.get());
  ControllerContext ctx;
  ctx.store = store_.get();
  ctx.cache = manager.cache();
  for (auto& r : ControllerRegistry::Global().MakeAll(ctx)) manager.Add(std::move(r));
  // The cache holds what the controllers declare: the server's kinds and the test's.
  for (const char* kind : {"Service", "Allocation", "Node", "Widget"}) {
    EXPECT_TRUE(manager.cache()->Holds(kind)) << kind;
  }
  EXPECT_FALSE(manager.cache()->Holds("Event"));
  ASSERT_TRUE(manager.Start());

  // One from the initial sync, one from the watch.
  EXPECT_TRUE(WaitForStatus("before-start"));
  ASSERT_TRUE(store_->Put(Widget("after-start", 3)));
  EXPECT_TRUE(WaitForStatus("after-start"));
  ASSERT_TRUE(store_->Put(Widget("after-start", 5)));  // a new generation: a new status
  EXPECT_TRUE(WaitForStatus("after-start"));
  auto resized = store_->Get({"Widget", "default", "after-start"});
  ASSERT_TRUE(resized);
  EXPECT_EQ((*resized)["status"], (Json{{"area", 25}, {"observedGeneration", 2}}));
  manager.Stop();
}

// Fails every key with the code its name says, and notes when each was tried.
class FailingReconciler : public Reconciler {
 public:
  static inline const std::map<std::string, Code> kCodes = {
      {"invalid", Code::kInvalidArgument},
      {"forbidden", Code::kForbidden},
      {"unavailable", Code::kUnavailable},
      {"conflict", Code::kConflict},
  };

  std::string Name() const override { return "failing"; }
  WatchedKinds Kinds() const override { return {"Widget", {}, {}}; }
  std::vector<std::string> KeysFor(const WatchEvent&) override { return {}; }
  Result<std::vector<std::string>> AllKeys() override {
    std::vector<std::string> keys;
    for (const auto& [key, code] : kCodes) keys.push_back(key);
    return keys;
  }
  Result<ReconcileResult> Reconcile(const std::string& key) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tries_[key].push_back(Clock::now());
    }
    cv_.notify_all();
    return MakeError(kCodes.at(key), key);
  }

  // Waits until `key` was tried `n` times; returns when it was tried each time.
  std::vector<Clock::time_point> WaitForTries(const std::string& key, size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, Clock::now() + kPatience, [&] { return tries_[key].size() >= n; });
    return tries_[key];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<Clock::time_point>> tries_;
};

TEST(RetryPolicy, InvalidInputAndPermissionAreFinalWhileTransientErrorsRetry) {
  for (Code c : {Code::kInvalidArgument, Code::kForbidden, Code::kUnauthenticated,
                 Code::kFailedPrecondition, Code::kTooLarge}) {
    EXPECT_EQ(RetryPolicyFor(c), RetryPolicy::kDoNotRetry) << static_cast<int>(c);
  }
  for (Code c : {Code::kUnavailable, Code::kConflict, Code::kInternal, Code::kNotFound,
                 Code::kAlreadyExists, Code::kGone}) {
    EXPECT_EQ(RetryPolicyFor(c), RetryPolicy::kRetryWithBackoff) << static_cast<int>(c);
  }
}

TEST_F(ManagerTest, OnlyTransientErrorsAreRetriedAndThoseWithBackoff) {
  auto owned = std::make_unique<FailingReconciler>();
  FailingReconciler* failing = owned.get();
  ControllerManager manager(store_.get());
  manager.Add(std::move(owned));
  ASSERT_TRUE(manager.Start());

  for (const char* key : {"unavailable", "conflict"}) {
    auto tries = failing->WaitForTries(key, 3);
    ASSERT_GE(tries.size(), 3u) << key;
    // Per-key exponential backoff: 5 ms before the first retry, 10 ms before the second.
    EXPECT_GE(tries[1] - tries[0], WorkQueue::kBaseDelay) << key;
    EXPECT_GE(tries[2] - tries[1], 2 * WorkQueue::kBaseDelay) << key;
  }
  // Those two have waited 15 ms and more of backoff, past the 5 ms a retry would have taken.
  for (const char* key : {"invalid", "forbidden"}) {
    EXPECT_EQ(failing->WaitForTries(key, 1).size(), 1u) << key;
  }
  manager.Stop();
  auto stats = manager.Stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].not_retried, 2u);
  EXPECT_EQ(stats[0].successes, 0u);
}

// A gate the test opens.
class TestGate : public LeaderGate {
 public:
  bool MayWrite() const override {
    std::lock_guard<std::mutex> lock(mu_);
    ++asked_;
    cv_.notify_all();
    return open_;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
  }
  bool WaitAsked(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, Clock::now() + kPatience, [&] { return asked_ >= n; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int asked_ = 0;
  bool open_ = false;
};

TEST_F(ManagerTest, NothingIsReconciledOrRunWhileThisServerMayNotWrite) {
  auto gate = std::make_shared<TestGate>();
  ControllerManagerOptions opts;
  opts.leader_recheck = std::chrono::milliseconds(5);
  ControllerManager manager(store_.get(), gate, opts);
  ControllerContext ctx;
  ctx.store = store_.get();
  ctx.cache = manager.cache();
  for (auto& r : ControllerRegistry::Global().MakeAll(ctx)) manager.Add(std::move(r));
  std::mutex mu;
  std::condition_variable cv;
  int runs = 0;
  // Due at start and then hourly: skipped at start, it runs once the gate opens, not an hour on.
  manager.AddPeriodic({"count", std::chrono::hours(1), true, [&] {
                         std::lock_guard<std::mutex> lock(mu);
                         ++runs;
                         cv.notify_all();
                       }});
  // One that touches only this server's own data runs whatever the gate says.
  int own_runs = 0;
  manager.AddPeriodic({"own", std::chrono::milliseconds(5), true,
                       [&] {
                         std::lock_guard<std::mutex> lock(mu);
                         ++own_runs;
                         cv.notify_all();
                       },
                       /*every_member=*/true});
  ASSERT_TRUE(store_->Put(Widget("p", 4)));
  int64_t from = store_->CurrentRevision();
  ASSERT_TRUE(manager.Start());

  // Asked again and again, and told no: nothing is written, nothing run but `own`.
  ASSERT_TRUE(gate->WaitAsked(20));
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_EQ(runs, 0);
    EXPECT_TRUE(cv.wait_until(lock, Clock::now() + kPatience, [&] { return own_runs >= 3; }));
  }
  auto unchanged = store_->Get({"Widget", "default", "p"});
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(ResourceVersionOf(*unchanged), from);

  gate->Open();
  EXPECT_TRUE(WaitForStatus("p"));
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_until(lock, Clock::now() + kPatience, [&] { return runs > 0; }));
  }
  manager.Stop();
}

TEST_F(ManagerTest, PeriodicRunnablesRunWhenDueAndAtStartIfAsked) {
  ControllerManager manager(store_.get());
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> order;
  auto record = [&](const std::string& name) {
    return [&, name] {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(name);
      cv.notify_all();
    };
  };
  manager.AddPeriodic({"every-10ms", std::chrono::milliseconds(10), false, record("a")});
  manager.AddPeriodic({"at-start", std::chrono::hours(1), true, record("b")});
  ASSERT_TRUE(manager.Start());
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_until(lock, Clock::now() + kPatience, [&] { return order.size() >= 3; }));
  }
  manager.Stop();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(order[0], "b");
  EXPECT_EQ(std::count(order.begin(), order.end(), "b"), 1);
}

}  // namespace
}  // namespace mentat
