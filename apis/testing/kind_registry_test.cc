// A kind registered from one file (widget_kind.cc) is served end to end: the registry names it,
// NormalizeObject runs its normalize, default and validate steps, `mt get` has its columns, and
// the API server on 127.0.0.1 (over a RocksDB store in a temp dir) admits, stores and lists it.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "apis/kind_registry.h"
#include "apis/server/api_server.h"
#include "apis/service.h"
#include "store/local_store.h"

namespace mentat {
namespace {

constexpr char kWidget[] = R"(kind: Widget
metadata:
  name: w1
spec:
  size: 3
)";

constexpr char kBigRedWidget[] = R"(kind: Widget
metadata:
  name: w2
spec:
  size: 7
  color: red
)";

TEST(KindRegistryTest, NamesTheTestKindAfterTheBuiltInOnes) {
  std::vector<std::string> kinds;
  for (const auto& k : Kinds()) kinds.emplace_back(k.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"Service", "Allocation", "Node", "SecurityProfile",
                                             "NamespacePolicy", "Event", "ServiceRevision",
                                             "Widget"}));
  for (const char* name : {"Widget", "widget", "widgets", "wd", "WD"}) {
    auto k = KindByName(name);
    ASSERT_TRUE(k) << name;
    EXPECT_EQ(k->kind, "Widget");
    EXPECT_TRUE(k->namespaced);
  }
  ASSERT_TRUE(KindByPlural("widgets"));
  EXPECT_FALSE(KindByPlural("widget"));
  EXPECT_EQ(KindByName("svc")->kind, "Service");
  EXPECT_EQ(KindOfKindless().kind, "Service");
}

TEST(KindRegistryTest, NormalizesDefaultsAndValidatesTheTestKind) {
  auto w = NormalizeManifestText(kWidget);
  ASSERT_TRUE(w) << w.error().ToString();
  EXPECT_EQ((*w)["spec"], (Json{{"size", 3}, {"color", "red"}}));
  EXPECT_EQ(NamespaceOf(*w), "default");

  auto big = NormalizeManifestText(kBigRedWidget);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message(), "Widget \"w2\" is invalid");
  ASSERT_EQ(big.error().details().size(), 1u);
  EXPECT_EQ(big.error().details()[0].field, "spec.color");
  EXPECT_EQ(big.error().details()[0].line, 6);
  EXPECT_EQ(big.error().details()[0].message, "a widget larger than 5 must be blue");

  auto unknown = NormalizeManifestText("kind: Widget\nmetadata: {name: w3}\nspec: {sise: 2}\n");
  ASSERT_FALSE(unknown);
  ASSERT_EQ(unknown.error().details().size(), 2u);
  // The missing field is reported at its map (spec, column 1), before the misspelt one.
  EXPECT_EQ(unknown.error().details()[0].field, "spec.size");
  EXPECT_EQ(unknown.error().details()[0].message, "required");
  EXPECT_EQ(unknown.error().details()[1].field, "spec.sise");
  EXPECT_EQ(unknown.error().details()[1].message, "unknown field, did you mean \"size\"?");

  auto misspelt = NormalizeManifestText("kind: Widgte\nmetadata: {name: w4}\n");
  ASSERT_FALSE(misspelt);
  EXPECT_EQ(misspelt.error().details()[0].message, "unknown kind, did you mean \"Widget\"?");
}

TEST(KindRegistryTest, PrintsTheTestKindsColumns) {
  const KindInfo widget = *KindByName("widget");
  auto w = NormalizeManifestText(kWidget);
  ASSERT_TRUE(w);
  EXPECT_EQ(PrinterHeader(widget, false), (std::vector<std::string>{"NAME", "SIZE", "AGE"}));
  EXPECT_EQ(PrinterHeader(widget, true),
            (std::vector<std::string>{"NAME", "SIZE", "AGE", "COLOR"}));
  EXPECT_EQ(PrinterRow(widget, *w, true),
            (std::vector<std::string>{"w1", "3", "<unknown>", "red"}));
  EXPECT_EQ(PrinterHeader(*KindByName("event"), false), (std::vector<std::string>{"NAME", "AGE"}));
}

class WidgetServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
    std::string dir = base + "/widgets-XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    StateMachineOptions o;
    o.dir = dir_ + "/store";
    auto s = OpenLocalStore(o);
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
    ApiServerOptions opts;
    opts.port = 0;
    opts.workers = 2;
    server_ = std::make_unique<ApiServer>(store_.get(), opts);
    auto port = server_->Start();
    ASSERT_TRUE(port) << port.error().ToString();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", *port);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  httplib::Result Put(const std::string& name, const std::string& yaml) {
    return client_->Put("/v1/widgets/" + name + "?namespace=toys", yaml, "application/yaml");
  }

  std::string dir_;
  LocalStorePtr store_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(WidgetServerTest, AdmitsStoresAndListsTheTestKind) {
  auto created = Put("w1", kWidget);
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  auto got = client_->Get("/v1/widgets/w1?namespace=toys");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200) << got->body;
  Json w = Json::parse(got->body);
  EXPECT_EQ(w["spec"], (Json{{"size", 3}, {"color", "red"}}));
  EXPECT_EQ(NamespaceOf(w), "toys");
  EXPECT_EQ(LabelOf(w, "widgets.mentat.io/admitted"), "true");

  auto list = client_->Get("/v1/widgets?namespace=toys");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  Json items = Json::parse(list->body);
  EXPECT_EQ(items["kind"], "WidgetList");
  ASSERT_EQ(items["items"].size(), 1u);
  EXPECT_EQ(NameOf(items["items"][0]), "w1");
}

TEST_F(WidgetServerTest, RefusesAnInvalidWidgetWithItsLine) {
  auto refused = Put("w2", kBigRedWidget);
  ASSERT_TRUE(refused);
  ASSERT_EQ(refused->status, 400) << refused->body;
  Json body = Json::parse(refused->body);
  EXPECT_EQ(body["message"], "Widget \"w2\" is invalid");
  EXPECT_EQ(body["details"][0]["field"], "spec.color");
  EXPECT_EQ(body["details"][0]["line"], 6);
}

TEST_F(WidgetServerTest, AdmissionReadsTheStoredWidgets) {
  for (const char* name : {"a", "b", "c"}) {
    std::string yaml = "kind: Widget\nmetadata: {name: " + std::string(name) + "}\nspec: {size: 1}\n";
    auto r = Put(name, yaml);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
  }
  auto fourth = Put("d", "kind: Widget\nmetadata: {name: d}\nspec: {size: 1}\n");
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->status, 403) << fourth->body;
  EXPECT_NE(fourth->body.find("holds 3 widgets already"), std::string::npos) << fourth->body;
  // An update of a stored widget is not a new one.
  auto update = Put("a", "kind: Widget\nmetadata: {name: a}\nspec: {size: 2}\n");
  ASSERT_TRUE(update);
  EXPECT_EQ(update->status, 200) << update->body;
}

TEST_F(WidgetServerTest, AnUnknownPluralIsNotFoundWithAHint) {
  auto r = client_->Get("/v1/widgetz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("did you mean \\\"widgets\\\"?"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace mentat
