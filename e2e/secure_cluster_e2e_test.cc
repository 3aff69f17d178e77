// The production shape, end to end: mentat-server with HTTPS and tokens, a separate
// mentat-agent with its own node token verifying the server with the CA, and `mt` with an
// operator token. A service applied with mt becomes Ready through the agent; an agent that
// holds another node's token cannot register as this node.
#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class SecureCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("secure");
    ASSERT_EQ(MakeTestCertificates(dir_), "");
    port_ = FreePort();
    url_ = "https://127.0.0.1:" + std::to_string(port_);
    server_ = std::make_unique<Process>(
        ServerArgv(port_, dir_ + "/data",
                   {"--tls-cert", dir_ + "/server.crt", "--tls-key", dir_ + "/server.key", "--auth",
                    "tokens", "--bootstrap-token"}),
        dir_ + "/server.log");
    httplib::Client probe(url_);
    probe.set_ca_cert_path((dir_ + "/ca.crt").c_str());
    probe.enable_server_certificate_verification(true);
    ASSERT_TRUE(WaitFor([&] {
      auto r = probe.Get("/healthz");
      return r && r->status == 200;
    }, 15s)) << ReadFile(dir_ + "/server.log");
    std::string log = ReadFile(dir_ + "/server.log");
    auto at = log.find('\n', log.find("bootstrap admin token")) + 1;
    admin_ = log.substr(at, log.find('\n', at) - at);
  }
  // mt with the CA and a token, against the HTTPS server.
  CommandResult Mt(const std::string& token, std::vector<std::string> args) {
    std::vector<std::string> argv = {Runfile("cmd/mt/mt"), "--server", url_, "--ca-file",
                                     dir_ + "/ca.crt", "--token", token};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {"HOME=" + dir_});
  }
  std::string MakeToken(const std::string& name, const std::string& role, const std::string& node = "") {
    httplib::Client cli(url_);
    cli.set_ca_cert_path((dir_ + "/ca.crt").c_str());
    cli.enable_server_certificate_verification(true);
    cli.set_bearer_token_auth(admin_.c_str());
    Json req = {{"name", name}, {"role", role}};
    if (!node.empty()) req["node"] = node;
    auto r = cli.Post("/v1/tokens", req.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 201);
    return r && r->status == 201 ? Json::parse(r->body)["token"].get<std::string>() : "";
  }
  std::unique_ptr<Process> Agent(const std::string& node, const std::string& token) {
    return std::make_unique<Process>(
        std::vector<std::string>{Runfile("cmd/mentat-agent/mentat-agent"), "--server", url_,
                                 "--token", token, "--ca-file", dir_ + "/ca.crt", "--node-name",
                                 node, "--data-dir", dir_ + "/agent-" + node},
        dir_ + "/agent-" + node + ".log");
  }

  std::string dir_, url_, admin_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(SecureCluster, ServiceBecomesReadyThroughAnAgentOverTlsWithTokens) {
  std::string op = MakeToken("deployer", "operator");
  std::string node = MakeToken("node-a", "node", "node-a");
  auto agent = Agent("node-a", node);
  std::string manifest = dir_ + "/web.yaml";
  WriteFile(manifest, "name: web\ndriver: exec\ncommand: /bin/sleep\nargs: [\"600\"]\n");
  auto applied = Mt(op, {"apply", "-f", manifest});
  ASSERT_EQ(applied.exit_code, 0) << applied.out << applied.err;
  auto waited = Mt(op, {"wait", "--for=condition=Ready", "service/web", "--timeout=30s"});
  EXPECT_EQ(waited.exit_code, 0) << waited.out << waited.err << "\nagent log:\n"
                                 << ReadFile(dir_ + "/agent-node-a.log");
  auto nodes = Mt(op, {"nodes"});
  EXPECT_NE(nodes.out.find("node-a"), std::string::npos) << nodes.out << nodes.err;
  // Logs come through the server, which checks the token's role and calls the agent with its
  // own key for the node: an operator may read them, a read-only token may not.
  auto logs = Mt(op, {"logs", "web-0"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err << "\nserver log:\n"
                               << server_->Log() << "\nagent log:\n"
                               << ReadFile(dir_ + "/agent-node-a.log");
  std::string reader = MakeToken("reader", "read-only");
  auto refused = Mt(reader, {"logs", "web-0"});
  EXPECT_EQ(refused.exit_code, 4) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("may not read logs"), std::string::npos) << refused.err;
  // The operator may not touch security profiles; mt says it is a permission problem (exit 4).
  WriteFile(dir_ + "/p.yaml", "kind: SecurityProfile\nmetadata: {name: x}\nspec: {driver: exec, isolation: low}\n");
  auto denied = Mt(op, {"apply", "-f", dir_ + "/p.yaml"});
  EXPECT_EQ(denied.exit_code, 4) << denied.out << denied.err;
  EXPECT_NE(denied.err.find("admin role"), std::string::npos) << denied.err;
  // Without the CA, mt refuses the server before sending anything.
  auto untrusted = RunCommand({Runfile("cmd/mt/mt"), "--server", url_, "--token", op, "get", "services"},
                              {"HOME=" + dir_});
  EXPECT_NE(untrusted.exit_code, 0);
  EXPECT_NE(untrusted.err.find("certificate"), std::string::npos) << untrusted.err;
}

TEST_F(SecureCluster, AnAgentWithAnotherNodesTokenCannotRegister) {
  std::string node_b = MakeToken("node-b", "node", "node-b");
  auto agent = Agent("node-a", node_b);  // claims node-a with node-b's token
  // Its first call, for node-a's agent key, is refused already; so would its write of node-a be.
  ASSERT_TRUE(WaitFor([&] {
    std::string log = ReadFile(dir_ + "/agent-node-a.log");
    return log.find("may not fetch the agent key of node node-a") != std::string::npos ||
           log.find("may not write node node-a") != std::string::npos || !agent->Running();
  }, 15s)) << ReadFile(dir_ + "/agent-node-a.log");
  auto nodes = Mt(admin_, {"get", "nodes", "-o", "name"});
  EXPECT_EQ(nodes.out.find("node-a"), std::string::npos) << "an impostor agent registered node-a";
}

TEST_F(SecureCluster, AnyRoleReadsTheClusterOnlyAnAdminChangesItAndNoTokenNeither) {
  std::string op = MakeToken("ops", "operator");
  std::string node = MakeToken("node-c", "node", "node-c");
  std::string reader = MakeToken("viewer", "read-only");
  for (const auto& token : {op, node, reader, admin_}) {
    auto status = Mt(token, {"cluster", "status", "-o", "json"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
  }
  for (const auto& token : {op, node, reader}) {
    auto add = Mt(token, {"cluster", "add", "n9", "127.0.0.1:9648"});
    EXPECT_NE(add.exit_code, 0);
    EXPECT_TRUE(Has(add.err, "forbidden")) << add.err;
    auto transfer = Mt(token, {"cluster", "transfer-leader", "n9"});
    EXPECT_TRUE(Has(transfer.err, "forbidden")) << transfer.err;
  }
  // An admin gets past the check, to what this server (a cluster of one) says.
  auto admin = Mt(admin_, {"cluster", "remove", "n9"});
  EXPECT_TRUE(Has(admin.err, "no member n9 in the cluster")) << admin.err;
  // Without a token: nothing, not even the status.
  httplib::Client cli(url_);
  cli.set_ca_cert_path((dir_ + "/ca.crt").c_str());
  cli.enable_server_certificate_verification(true);
  auto anonymous = cli.Get("/v1/cluster");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  auto anonymous_add = cli.Post("/v1/cluster/members", R"({"name":"n9","peerURL":"127.0.0.1:9648"})", "application/json");
  ASSERT_TRUE(anonymous_add);
  EXPECT_EQ(anonymous_add->status, 401);
}

}  // namespace
}  // namespace mentat::e2e
