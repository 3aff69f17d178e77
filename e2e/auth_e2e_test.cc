// Authentication and roles through the real server (--auth tokens): the bootstrap admin token,
// 401 without or with an unknown token, 403 for the wrong role, and node tokens that may write
// only their own Node and the status of Allocations placed on their node.
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include "apis/sha256.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("auth");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log",
                          {"--auth", "tokens", "--bootstrap-token"});
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
    // The token is printed once, on the line after the announcement.
    std::string log = ReadFile(dir_ + "/server.log");
    auto at = log.find("bootstrap admin token");
    ASSERT_NE(at, std::string::npos) << log;
    auto start = log.find('\n', at) + 1;
    admin_ = log.substr(start, log.find('\n', start) - start);
    ASSERT_EQ(admin_.rfind("mt_", 0), 0u) << admin_;
    reader_ = MakeToken("reader", "read-only");
    operator_ = MakeToken("deployer", "operator");
    node_a_ = MakeToken("node-a", "node", "node-a");
    node_b_ = MakeToken("node-b", "node", "node-b");
  }

  httplib::Result Call(const std::string& method, const std::string& path, const std::string& token,
                       const std::string& body = "") {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_default_headers({{"Accept-Encoding", "identity"}});
    if (!token.empty()) cli.set_bearer_token_auth(token.c_str());
    if (method == "GET") return cli.Get(path);
    if (method == "PUT") {
      bool artifact = path.rfind("/v1/artifacts/", 0) == 0;
      return cli.Put(path, body, artifact ? "application/octet-stream" : "application/json");
    }
    if (method == "POST") return cli.Post(path, body, "application/json");
    return cli.Delete(path);
  }
  int Code(const std::string& method, const std::string& path, const std::string& token,
           const std::string& body = "") {
    auto r = Call(method, path, token, body);
    return r ? r->status : 0;
  }
  std::string MakeToken(const std::string& name, const std::string& role, const std::string& node = "") {
    Json req = {{"name", name}, {"role", role}};
    if (!node.empty()) req["node"] = node;
    auto r = Call("POST", "/v1/tokens", admin_, req.dump());
    EXPECT_TRUE(r && r->status == 201) << (r ? r->body : "no response");
    if (!r || r->status != 201) return "";
    return Json::parse(r->body)["token"];
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
  std::string admin_, reader_, operator_, node_a_, node_b_;
};

const std::string kService = R"({"name":"web","driver":"exec","command":"/bin/sleep","args":["600"]})";
const std::string kProfile =
    R"({"kind":"SecurityProfile","metadata":{"name":"strict"},"spec":{"driver":"exec","isolation":"low"}})";

std::string Allocation(const std::string& name, const std::string& node) {
  return Json({{"kind", "Allocation"},
               {"metadata", {{"name", name}, {"labels", {{"mentat.io/node", node}}}}},
               {"spec", {{"driver", "exec"}}}})
      .dump();
}

TEST_F(AuthTest, NoTokenOrUnknownTokenIs401ButProbesAreOpen) {
  auto r = Call("GET", "/v1/services", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(Json::parse(r->body)["reason"], "Unauthorized") << r->body;
  EXPECT_NE(r->body.find("Bearer"), std::string::npos) << r->body;
  EXPECT_EQ(Code("GET", "/v1/services", "mt_not-a-token"), 401);
  EXPECT_EQ(Code("PUT", "/v1/services/web", "", kService), 401);
  EXPECT_EQ(Code("GET", "/healthz", ""), 200);
  EXPECT_EQ(Code("GET", "/readyz", ""), 200);
  // A revoked token stops working at once.
  EXPECT_EQ(Code("GET", "/v1/services", reader_), 200);
  EXPECT_EQ(Code("DELETE", "/v1/tokens/reader", admin_), 200);
  EXPECT_EQ(Code("GET", "/v1/services", reader_), 401);
}

TEST_F(AuthTest, EachRoleMayDoItsOwnWorkAndNoMore) {
  // read-only: reads; no writes.
  EXPECT_EQ(Code("GET", "/v1/services", reader_), 200);
  auto denied = Call("PUT", "/v1/services/web", reader_, kService);
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  EXPECT_NE(denied->body.find("read-only"), std::string::npos) << denied->body;
  // operator: services, not profiles, snapshots or tokens.
  EXPECT_EQ(Code("PUT", "/v1/services/web", operator_, kService), 201);
  EXPECT_EQ(Code("PUT", "/v1/securityprofiles/strict", operator_, kProfile), 403);
  EXPECT_EQ(Code("GET", "/v1/snapshot", operator_), 403);
  EXPECT_EQ(Code("POST", "/v1/tokens", operator_, R"({"name":"x","role":"admin"})"), 403);
  EXPECT_EQ(Code("DELETE", "/v1/services/web", reader_), 403);
  // An apply that mixes in a profile is refused whole: nothing is written.
  Json apply = {{"documents",
                 {{{"source", "a.yaml"}, {"text", "name: api\ndriver: exec\ncommand: /bin/true\n"}},
                  {{"source", "b.yaml"}, {"text", kProfile}}}}};
  EXPECT_EQ(Code("POST", "/v1/apply", operator_, apply.dump()), 403);
  EXPECT_EQ(Code("GET", "/v1/services/api", admin_), 404);
  // admin: everything.
  EXPECT_EQ(Code("PUT", "/v1/securityprofiles/strict", admin_, kProfile), 201);
  EXPECT_EQ(Code("GET", "/v1/snapshot", admin_), 200);
  EXPECT_EQ(Code("DELETE", "/v1/services/web", operator_), 200);
  auto list = Call("GET", "/v1/tokens", admin_);
  ASSERT_TRUE(list && list->status == 200);
  EXPECT_EQ(list->body.find("mt_"), std::string::npos) << "a token list must never show tokens";
  EXPECT_EQ(Json::parse(list->body)["items"].size(), 5u);
}

TEST_F(AuthTest, NodeTokensWriteOnlyTheirOwnNodeAndAllocations) {
  Json node_a = {{"kind", "Node"}, {"metadata", {{"name", "node-a"}}}, {"spec", Json::object()}};
  Json node_b = {{"kind", "Node"}, {"metadata", {{"name", "node-b"}}}, {"spec", Json::object()}};
  EXPECT_EQ(Code("PUT", "/v1/nodes/node-a", node_a_, node_a.dump()), 201);
  EXPECT_EQ(Code("PUT", "/v1/nodes/node-b", node_a_, node_b.dump()), 403);
  EXPECT_EQ(Code("PUT", "/v1/nodes/node-a/status", node_a_, R"({"status":{"ready":true}})"), 200);
  EXPECT_EQ(Code("PUT", "/v1/nodes/node-a/status", node_b_, R"({"status":{"ready":false}})"), 403);
  EXPECT_EQ(Code("DELETE", "/v1/nodes/node-a", node_a_), 403);
  // Allocations are placed by the control plane (admin here); each node reports only its own.
  EXPECT_EQ(Code("PUT", "/v1/allocations/web-0", admin_, Allocation("web-0", "node-a")), 201);
  EXPECT_EQ(Code("PUT", "/v1/allocations/web-1", admin_, Allocation("web-1", "node-b")), 201);
  EXPECT_EQ(Code("PUT", "/v1/allocations/web-0/status", node_a_, R"({"status":{"phase":"Running"}})"), 200);
  auto other = Call("PUT", "/v1/allocations/web-1/status", node_a_, R"({"status":{"phase":"Failed"}})");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 403);
  EXPECT_NE(other->body.find("node-b"), std::string::npos) << other->body;
  auto web1 = Json::parse(Call("GET", "/v1/allocations/web-1", admin_)->body);
  EXPECT_NE(web1["status"].value("phase", ""), "Failed");
  // Nodes may not write specs of allocations or services.
  EXPECT_EQ(Code("PUT", "/v1/allocations/web-0", node_a_, Allocation("web-0", "node-a")), 403);
  EXPECT_EQ(Code("PUT", "/v1/services/web", node_a_, kService), 403);
  EXPECT_EQ(Code("GET", "/v1/allocations", node_a_), 200);
}

TEST_F(AuthTest, ArtifactUploadsNeedTheOperatorRoleAndUsersRead) {
  const std::string digest = Sha256::Of("app bytes");
  const std::string path = "/v1/artifacts/" + digest;
  EXPECT_EQ(Code("PUT", path, "", "app bytes"), 401);
  auto reader = Call("PUT", path, reader_, "app bytes");
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->status, 403);
  EXPECT_NE(reader->body.find("upload artifacts"), std::string::npos) << reader->body;
  EXPECT_EQ(Code("PUT", path, node_a_, "app bytes"), 403);
  EXPECT_EQ(Code("GET", path, admin_), 404) << "a refused upload stored something";
  EXPECT_EQ(Code("PUT", path, operator_, "app bytes"), 201);
  EXPECT_EQ(Code("PUT", path, admin_, "app bytes"), 200);
  // Every user role reads. A node reads only the artifacts its allocations run (none here:
  // zero_trust_e2e_test has one that does), and lists none.
  auto fetched = Call("GET", path, reader_);
  ASSERT_TRUE(fetched);
  EXPECT_EQ(fetched->status, 200);
  EXPECT_EQ(fetched->body, "app bytes");
  EXPECT_EQ(Code("GET", path, node_a_), 403);
  EXPECT_EQ(Code("GET", "/v1/artifacts", node_b_), 403);
  EXPECT_EQ(Code("GET", path, ""), 401);
}

TEST_F(AuthTest, BootstrapHappensOnceAndTokensSurviveRestart) {
  std::string tokens = ReadFile(dir_ + "/data/tokens.yaml");
  EXPECT_EQ(tokens.find(admin_), std::string::npos) << "the tokens file must hold hashes only";
  server_->Signal(SIGTERM);
  ASSERT_TRUE(server_->Wait(10s).has_value());
  server_ = StartServer(port_, dir_ + "/data", dir_ + "/server2.log",
                        {"--auth", "tokens", "--bootstrap-token"});
  ASSERT_TRUE(server_);
  std::string log = ReadFile(dir_ + "/server2.log");
  EXPECT_EQ(log.find("mt_"), std::string::npos) << "a second bootstrap printed a token:\n" << log;
  EXPECT_NE(log.find("exists already"), std::string::npos) << log;
  EXPECT_EQ(Code("GET", "/v1/services", admin_), 200);
  EXPECT_EQ(Code("GET", "/v1/services", operator_), 200);
}

TEST(AuthFlags, BootstrapTokenFileHoldsATokenThatWorks) {
  // --bootstrap-token-file: written before the server listens, mode 0600, never printed.
  std::string dir = TempDir("auth-token-file");
  int port = FreePort();
  const std::string file = dir + "/admin.token";
  auto server = StartServer(port, dir + "/data", dir + "/server.log",
                            {"--auth", "tokens", "--bootstrap-token-file", file});
  ASSERT_TRUE(server) << ReadFile(dir + "/server.log");
  std::string token = ReadFile(file);
  ASSERT_EQ(token.rfind("mt_", 0), 0u) << token;
  token.pop_back();  // the newline
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(dir + "/server.log").find(token), std::string::npos) << "the token was printed";
  httplib::Client cli("127.0.0.1", port);
  cli.set_bearer_token_auth(token.c_str());
  auto r = cli.Get("/v1/tokens");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST(AuthFlags, AuthNoneIsRefusedOffLoopback) {
  std::string dir = TempDir("auth-flags");
  auto r = RunCommand({Runfile("cmd/mentat-server/mentat-server"), "--listen", "0.0.0.0:0",
                       "--data-dir", dir, "--auth", "none"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("loopback"), std::string::npos) << r.err;
}

TEST(AuthFlags, PlainHttpOffLoopbackNeedsInsecureHttp) {
  // Tokens would cross the network in the clear: refused, unless the operator says so, loudly.
  std::string dir = TempDir("auth-insecure");
  const int port = FreePort();
  const std::string all = "0.0.0.0:" + std::to_string(port);
  auto refused = RunCommand({Runfile("cmd/mentat-server/mentat-server"), "--listen", all,
                             "--data-dir", dir + "/a"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("would send bearer tokens in the clear"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--insecure-http"), std::string::npos) << refused.err;

  Process server({Runfile("cmd/mentat-server/mentat-server"), "--listen", all, "--data-dir",
                  dir + "/b", "--insecure-http"},
                 dir + "/server.log");
  // Reached through loopback only, as every test does.
  ASSERT_TRUE(WaitFor([&] { return HttpGet(port, "/healthz").first == 200; }, 15s)) << server.Log();
  EXPECT_NE(server.Log().find("--insecure-http: serving plain HTTP on " + all), std::string::npos)
      << server.Log();
}

}  // namespace
}  // namespace mentat::e2e
