// The Service controller against a real RocksDB store on disk.
#include "controllers/service_controller.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "apis/service.h"
#include "store/rocksdb_store.h"

namespace mentat {
namespace {

class ServiceControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
           "/sc-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto s = RocksStore::Open({dir_, false});
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

  std::string dir_;
  std::unique_ptr<RocksStore> store_;
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

}  // namespace
}  // namespace mentat
