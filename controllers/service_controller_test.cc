// The Service controller against a real RocksDB store on disk.
#include "controllers/service_controller.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "apis/service.h"
#include "controllers/revisions.h"
#include "store/local_store.h"

namespace mentat {
namespace {

class ServiceControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
           "/sc-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto s = OpenLocalStore({dir_, false});
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
    controller_ = std::make_unique<ServiceController>(store_.get());
    // One Ready node with the exec driver.
    Json node = {{"kind", "Node"}, {"metadata", {{"name", "n1"}}}, {"spec", Json::object()}};
    ASSERT_TRUE(store_->Put(node));
    node["status"] = {{"ready", true}, {"lastHeartbeat", NowRfc3339()},
                      {"drivers", {{"exec", {{"healthy", true}}}}}};
    ASSERT_TRUE(store_->UpdateStatus(node));
  }

  void ApplyService(const std::string& yaml) {
    auto obj = NormalizeManifestText(yaml);
    ASSERT_TRUE(obj) << obj.error().ToString();
    ASSERT_TRUE(store_->Put(*obj));
  }

  std::vector<Json> Allocations() {
    auto l = store_->List("Allocation", {});
    return l ? l->items : std::vector<Json>{};
  }


  // What an agent would report for an allocation.
  void Report(const std::string& name, const std::string& phase, bool ready,
              const std::string& message = "") {
    auto a = store_->Get({"Allocation", "default", name});
    ASSERT_TRUE(a) << name;
    Json st = {{"phase", phase}, {"ready", ready}, {"message", message}};
    // Ready for an hour: past any min_healthy_time.
    st["conditions"] = Json::array({{{"type", "Ready"},
                                     {"status", ready ? "True" : "False"},
                                     {"lastTransitionTime",
                                      FormatTime(std::chrono::system_clock::now() - std::chrono::hours(1))}}});
    (*a)["status"] = st;
    ASSERT_TRUE(store_->UpdateStatus(*a));
  }

  Json Service() {
    auto s = store_->Get({"Service", "default", "web"});
    EXPECT_TRUE(s);
    return s ? *s : Json::object();
  }

  std::vector<Json> Revisions() {
    auto l = store_->List("ServiceRevision", {});
    return l ? l->items : std::vector<Json>{};
  }

  std::string dir_;
  LocalStorePtr store_;
  std::unique_ptr<ServiceController> controller_;
};

TEST_F(ServiceControllerTest, CountBecomesNamedAllocationsOnAReadyNode) {
  ApplyService("name: web\ndriver: exec\ncommand: /bin/sleep\nargs: ['100']\ncount: 3\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  auto allocs = Allocations();
  ASSERT_EQ(allocs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(NameOf(allocs[i]), "web-" + std::to_string(i));
    EXPECT_EQ(allocs[i]["spec"]["nodeName"], "n1");
    EXPECT_EQ(LabelOf(allocs[i], kLabelService), "web");
  }
  // Level-triggered and idempotent: reconciling again creates nothing new.
  int64_t rev = store_->CurrentRevision();
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  EXPECT_EQ(Allocations().size(), 3u);
  EXPECT_EQ(store_->CurrentRevision(), rev);
}

TEST_F(ServiceControllerTest, ScaleDownRemovesHighestSlots) {
  ApplyService("name: web\ndriver: exec\ncommand: /bin/sleep\ncount: 3\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  ApplyService("name: web\ndriver: exec\ncommand: /bin/sleep\ncount: 1\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  auto allocs = Allocations();
  ASSERT_EQ(allocs.size(), 1u);
  EXPECT_EQ(NameOf(allocs[0]), "web-0");
}

TEST_F(ServiceControllerTest, DeletedServiceLosesItsAllocations) {
  ApplyService("name: web\ndriver: exec\ncommand: /bin/sleep\ncount: 2\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  ASSERT_EQ(Allocations().size(), 2u);
  ASSERT_TRUE(store_->Delete({"Service", "default", "web"}));
  auto r = controller_->Reconcile("default/web");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(Allocations().size(), 0u);
}

TEST_F(ServiceControllerTest, NoNodeMeansPendingWithAReason) {
  ASSERT_TRUE(store_->Delete({"Node", "", "n1"}));
  ApplyService("name: web\ndriver: exec\ncommand: /bin/sleep\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  auto svc = store_->Get({"Service", "default", "web"});
  ASSERT_TRUE(svc);
  EXPECT_EQ((*svc)["status"]["phase"], "Pending");
  EXPECT_NE((*svc)["status"]["message"].get<std::string>().find("no agent has registered"),
            std::string::npos)
      << (*svc)["status"].dump();
}


TEST_F(ServiceControllerTest, EachTemplateIsOneRevisionAndGoingBackRenumbersIt) {
  const std::string v1 = "name: web\ndriver: exec\ncommand: /bin/sleep\nargs: ['1']\n";
  const std::string v2 = "name: web\ndriver: exec\ncommand: /bin/sleep\nargs: ['2']\n";
  ApplyService(v1);
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  ASSERT_EQ(Revisions().size(), 1u);
  EXPECT_EQ(RevisionNumber(Revisions()[0]), 1);
  EXPECT_EQ(Service()["status"]["rollout"]["revision"], 1);

  // Scaling and deploy settings are not revisions.
  ApplyService(v1 + "count: 2\ndeploy: {max_parallel: 2}\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  EXPECT_EQ(Revisions().size(), 1u);

  ApplyService(v2);
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  ASSERT_EQ(Revisions().size(), 2u);
  EXPECT_EQ(Service()["status"]["rollout"]["revision"], 2);

  ApplyService(v1);
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  auto revs = Revisions();
  ASSERT_EQ(revs.size(), 2u);  // v1 again: the same revision, renumbered as the newest
  for (const auto& r : revs) {
    EXPECT_EQ(RevisionNumber(r), r["spec"]["template"]["args"][0] == "1" ? 3 : 2) << r.dump();
  }
  EXPECT_EQ(Service()["status"]["rollout"]["revision"], 3);
}

TEST_F(ServiceControllerTest, HistoryKeepsTenRevisionsAndGoesWithTheService) {
  for (int i = 0; i < 13; ++i) {
    ApplyService("name: web\ndriver: exec\ncommand: /bin/sleep\nargs: ['" + std::to_string(i) + "']\n");
    ASSERT_TRUE(controller_->Reconcile("default/web"));
  }
  auto revs = Revisions();
  ASSERT_EQ(revs.size(), static_cast<size_t>(kRevisionHistoryLimit));
  for (const auto& r : revs) EXPECT_GE(RevisionNumber(r), 4) << r.dump();

  ASSERT_TRUE(store_->Delete({"Service", "default", "web"}));
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  EXPECT_TRUE(Revisions().empty());
}

TEST_F(ServiceControllerTest, RollingUpdateReplacesOneSlotAtATime) {
  const std::string base = "name: web\ndriver: exec\ncommand: /bin/sleep\ncount: 3\n"
                           "deploy: {min_healthy_time: 1s, healthy_deadline: 1m}\n";
  ApplyService(base + "args: ['1']\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  for (int i = 0; i < 3; ++i) Report("web-" + std::to_string(i), "Running", true);
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  EXPECT_EQ(Service()["status"]["rollout"]["state"], "Complete");
  std::string stable = Service()["status"]["stableRevision"];

  ApplyService(base + "args: ['2']\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  auto updated = [&] {
    int n = 0;
    for (const auto& a : Allocations()) n += a["spec"]["task"]["args"][0] == "2";
    return n;
  };
  EXPECT_EQ(updated(), 1);  // one slot replaced, the others untouched
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  EXPECT_EQ(updated(), 1);  // nothing more until it is healthy
  Json svc = Service();
  EXPECT_EQ(svc["status"]["rollout"]["state"], "Progressing");
  EXPECT_EQ(svc["status"]["stableRevision"], stable);

  for (int step = 2; step <= 3; ++step) {
    for (const auto& a : Allocations()) {
      if (a["spec"]["task"]["args"][0] == "2") Report(NameOf(a), "Running", true);
    }
    ASSERT_TRUE(controller_->Reconcile("default/web"));
    EXPECT_EQ(updated(), step);
  }
  for (const auto& a : Allocations()) Report(NameOf(a), "Running", true);
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  svc = Service();
  EXPECT_EQ(svc["status"]["rollout"]["state"], "Complete") << svc["status"].dump();
  EXPECT_NE(svc["status"]["stableRevision"], stable);
  const Json* available = nullptr;
  for (const auto& c : svc["status"]["conditions"]) {
    if (c["type"] == "Available") available = &c;
  }
  ASSERT_TRUE(available) << svc["status"].dump();
  EXPECT_EQ((*available)["status"], "True");
  EXPECT_EQ((*available)["message"], "3/3 serving, at least 2 needed");
}

TEST_F(ServiceControllerTest, AFailedRolloutRevertsToTheStableSpecWithAutoRevert) {
  const std::string base = "name: web\ndriver: exec\ncommand: /bin/sleep\ncount: 2\n"
                           "deploy: {min_healthy_time: 1s, healthy_deadline: 1m, auto_revert: true}\n";
  ApplyService(base + "args: ['good']\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  for (int i = 0; i < 2; ++i) Report("web-" + std::to_string(i), "Running", true);
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  ASSERT_EQ(Service()["status"]["rollout"]["state"], "Complete");

  ApplyService(base + "args: ['bad']\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  Report("web-0", "Failed", false, "exited with code 3");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  Json svc = Service();
  EXPECT_EQ(svc["spec"]["args"][0], "good") << "the spec went back to the stable template";
  EXPECT_EQ(svc["spec"]["count"], 2);
  EXPECT_EQ(svc["status"]["rollout"]["state"], "Failed");
  EXPECT_NE(svc["status"]["rollout"]["message"].get<std::string>().find(
                "web-0 failed: exited with code 3; reverting to revision 1"),
            std::string::npos)
      << svc["status"].dump();
  // The bad revision remembers how it ended.
  for (const auto& r : Revisions()) {
    if (r["spec"]["template"]["args"][0] == "bad") {
      EXPECT_EQ(r["status"]["outcome"], "Failed");
    }
  }
  // The revert rolls out as the newest revision.
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  svc = Service();
  EXPECT_EQ(svc["status"]["rollout"]["state"], "Progressing");
  EXPECT_EQ(svc["status"]["rollout"]["revision"], 3);
}

TEST_F(ServiceControllerTest, AFailedRolloutWithoutAutoRevertHalts) {
  const std::string base = "name: web\ndriver: exec\ncommand: /bin/sleep\ncount: 2\n"
                           "deploy: {min_healthy_time: 1s, healthy_deadline: 1m}\n";
  ApplyService(base + "args: ['good']\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  for (int i = 0; i < 2; ++i) Report("web-" + std::to_string(i), "Running", true);
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  ApplyService(base + "args: ['bad']\n");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  Report("web-0", "Failed", false, "exited with code 3");
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  ASSERT_TRUE(controller_->Reconcile("default/web"));
  Json svc = Service();
  EXPECT_EQ(svc["spec"]["args"][0], "bad");
  EXPECT_EQ(svc["status"]["rollout"]["state"], "Failed");
  EXPECT_EQ(svc["status"]["phase"], "Degraded");
  int old = 0;
  for (const auto& a : Allocations()) old += a["spec"]["task"]["args"][0] == "good";
  EXPECT_EQ(old, 1) << "web-1 keeps the old spec";
}

}  // namespace
}  // namespace mentat
