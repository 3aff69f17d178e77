// Apply sets and prune through the real server (POST /v1/apply?applyset=NAME&prune=true):
// pruning deletes only what an earlier apply of the same set recorded, never another set's
// objects or objects applied without a set, and the whole apply is one transaction.
#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using Json = nlohmann::json;

class ApplyPruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("prune");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log");
    ASSERT_TRUE(server_);
  }
  // Applies one service per name; returns (status, body).
  std::pair<int, Json> Apply(const std::vector<std::string>& names, const std::string& query) {
    Json docs = Json::array();
    for (const auto& n : names) {
      docs.push_back({{"source", n + ".yaml"},
                      {"text", "name: " + n + "\ndriver: exec\ncommand: /bin/sleep\nargs: [\"600\"]\n"}});
    }
    httplib::Client cli("127.0.0.1", port_);
    auto r = cli.Post("/v1/apply" + query, Json({{"documents", docs}}).dump(), "application/json");
    if (!r) return {0, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }
  bool Exists(const std::string& name) { return HttpGet(port_, "/v1/services/" + name).first == 200; }
  static std::string ActionOf(const Json& body, const std::string& name) {
    for (const auto& i : body["items"]) {
      if (i["name"] == name) return i["action"];
    }
    return "";
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(ApplyPruneTest, PruneTouchesOnlyItsOwnSet) {
  ASSERT_EQ(Apply({"a1", "a2"}, "?applyset=team-a").first, 200);
  ASSERT_EQ(Apply({"b1"}, "?applyset=team-b").first, 200);
  ASSERT_EQ(Apply({"loose"}, "").first, 200);
  auto a1 = Json::parse(HttpGet(port_, "/v1/services/a1").second);
  EXPECT_EQ(a1["metadata"]["labels"]["mentat.io/applyset"], "team-a");

  // A dry run names what would go and deletes nothing.
  auto [dcode, dry] = Apply({"a1"}, "?applyset=team-a&prune=true&dryRun=true");
  ASSERT_EQ(dcode, 200) << dry.dump();
  EXPECT_EQ(ActionOf(dry, "a2"), "pruned");
  EXPECT_TRUE(Exists("a2"));

  auto [code, body] = Apply({"a1"}, "?applyset=team-a&prune=true");
  ASSERT_EQ(code, 200) << body.dump();
  EXPECT_EQ(ActionOf(body, "a1"), "unchanged");
  EXPECT_EQ(ActionOf(body, "a2"), "pruned");
  EXPECT_EQ(ActionOf(body, "b1"), "");
  EXPECT_EQ(ActionOf(body, "loose"), "");
  EXPECT_TRUE(Exists("a1"));
  EXPECT_FALSE(Exists("a2"));
  EXPECT_TRUE(Exists("b1")) << "a prune of team-a deleted team-b's object";
  EXPECT_TRUE(Exists("loose")) << "a prune deleted an object applied without a set";
  // The built-in profiles (never applied with a set) are untouched too.
  EXPECT_EQ(HttpGet(port_, "/v1/securityprofiles/docker-hardened").first, 200);
}

TEST_F(ApplyPruneTest, PruneWithoutASetIsRefused) {
  ASSERT_EQ(Apply({"x"}, "").first, 200);
  auto [code, body] = Apply({"y"}, "?prune=true");
  EXPECT_EQ(code, 400);
  EXPECT_EQ(body["details"][0]["field"], "prune") << body.dump();
  EXPECT_FALSE(Exists("y"));
  EXPECT_TRUE(Exists("x"));
}

TEST_F(ApplyPruneTest, AnObjectOfAnotherSetIsNotTakenOver) {
  ASSERT_EQ(Apply({"shared"}, "?applyset=team-a").first, 200);
  auto [code, body] = Apply({"new-one", "shared"}, "?applyset=team-b&prune=true");
  EXPECT_EQ(code, 409) << body.dump();
  EXPECT_NE(body["message"].get<std::string>().find("team-a"), std::string::npos);
  EXPECT_FALSE(Exists("new-one")) << "a refused apply wrote part of its set";
  auto shared = Json::parse(HttpGet(port_, "/v1/services/shared").second);
  EXPECT_EQ(shared["metadata"]["labels"]["mentat.io/applyset"], "team-a");
}

// The answer's resourceVersion is the apply's own last revision, not whatever the store has
// reached by the time the answer is made: a client watching from it sees every later write.
TEST_F(ApplyPruneTest, TheAnswersResourceVersionIsTheApplysOwn) {
  auto post = [&](const std::string& text) {
    httplib::Client cli("127.0.0.1", port_);
    Json docs = Json::array({{{"source", "doc.yaml"}, {"text", text}}});
    auto r = cli.Post("/v1/apply", Json({{"documents", docs}}).dump(), "application/json");
    return r ? Json::parse(r->body, nullptr, false) : Json();
  };
  auto rv = [](const Json& v) { return std::stoll(v.get<std::string>()); };
  // A profile: no controller writes to it after the apply.
  const std::string profile =
      "kind: SecurityProfile\nmetadata:\n  name: rv-profile\nspec:\n  driver: exec\n"
      "  isolation: low\n";
  Json first = post(profile);
  ASSERT_TRUE(first.contains("items")) << first.dump();
  const int64_t profile_rv = rv(first["items"][0]["resourceVersion"]);
  EXPECT_EQ(rv(first["resourceVersion"]), profile_rv);
  // Then the store moves on: a service, and what the service controller writes for it.
  auto [code, svc] = Apply({"later"}, "");
  ASSERT_EQ(code, 200) << svc.dump();
  const int64_t svc_rv = rv(svc["items"][0]["resourceVersion"]);
  EXPECT_EQ(rv(svc["resourceVersion"]), svc_rv);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto list = Json::parse(HttpGet(port_, "/v1/events").second, nullptr, false);
        return list.is_object() && rv(list.value("resourceVersion", Json("0"))) > svc_rv;
      },
      std::chrono::seconds(20)))
      << "nothing was written after the service's apply";
  Json again = post(profile);
  ASSERT_TRUE(again.contains("items")) << again.dump();
  EXPECT_EQ(again["items"][0]["action"], "unchanged");
  EXPECT_EQ(rv(again["resourceVersion"]), profile_rv)
      << "an apply that changed nothing answered a later revision than its object's: "
      << again.dump();
}

}  // namespace
}  // namespace mentat::e2e
