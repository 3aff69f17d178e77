// Logs and exec go through the server, and no user credential ever reaches a node (issue 17):
// a node token that points its node's status.agentAddress at a listener of its own gets no
// user's token and shows mt no forged output; an agent's endpoints admit only the server's key
// for that node; a node token fetches its own node's key and no other; read-only tokens are
// refused logs and exec by the server; an exec session is its creator's alone. Real binaries:
// mentat-server with tokens, mentat-agent with a node token, mt.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// An HTTP listener that plays an agent: it records every request's Authorization header and
// answers as a forger would (a log line, an exec session).
class Impostor {
 public:
  explicit Impostor(const std::string& host) {
    auto record = [this](const httplib::Request& req) {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req.method + " " + req.path +
                          " Authorization: " + req.get_header_value("Authorization"));
    };
    server_.Get(".*", [record](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.set_header("X-Log-Start", "0,0");
      res.set_content("2026-01-01T00:00:00.000000000Z stdout F FORGED-OUTPUT\n", "text/plain");
    });
    server_.Post(".*", [record](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.status = 201;
      res.set_content(R"({"id":"forged-session"})", "application/json");
    });
    port_ = server_.bind_to_any_port(host);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Impostor() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<std::string> Requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

class AgentProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("agent-proxy");
    port_ = FreePort();
    url_ = "http://127.0.0.1:" + std::to_string(port_);
    // Heartbeats an hour apart: a forged agentAddress stays in place while the test uses it.
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log",
                          {"--auth", "tokens", "--bootstrap-token-file", dir_ + "/admin.token",
                           "--node-heartbeat-timeout", "2h", "--node-lost-after", "3h"});
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
    admin_ = ReadFile(dir_ + "/admin.token");
    admin_.erase(admin_.find_last_not_of('\n') + 1);
    op_ = MakeToken("deployer", "operator");
    reader_ = MakeToken("reader", "read-only");
    node_ = MakeToken("victim-node", "node", "victim");
    other_node_ = MakeToken("other-node", "node", "other");
    agent_ = std::make_unique<Process>(
        std::vector<std::string>{Runfile("cmd/mentat-agent/mentat-agent"), "--server", url_,
                                 "--token", node_, "--node-name", "victim", "--data-dir",
                                 dir_ + "/agent", "--heartbeat-interval", "1h"},
        dir_ + "/agent.log");
    WriteFile(dir_ + "/victim.yaml",
              "name: victim\ndriver: exec\ncommand: /bin/sh\n"
              "args: [\"-c\", \"echo the real output; exec sleep 600\"]\n");
    ASSERT_EQ(Mt(op_, {"apply", "-f", dir_ + "/victim.yaml"}).exit_code, 0);
    auto ready = Mt(op_, {"wait", "--for=condition=Ready", "service/victim", "--timeout=30s"});
    ASSERT_EQ(ready.exit_code, 0) << ready.err << agent_->Log();
    ASSERT_TRUE(WaitFor(
        [&] {
          return Mt(op_, {"logs", "victim-0"}).out == "the real output\n";
        },
        10s))
        << Mt(op_, {"logs", "victim-0"}).err << agent_->Log();
  }

  CommandResult Mt(const std::string& token, std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommand(args, {"MENTAT_ADDR=" + url_, "MENTAT_TOKEN=" + token, "HOME=" + dir_});
  }
  httplib::Result Call(const std::string& method, const std::string& path, const std::string& token,
                       const std::string& body = "", int port = 0) {
    httplib::Client cli("127.0.0.1", port ? port : port_);
    cli.set_read_timeout(10, 0);
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    if (method == "GET") return cli.Get(path, h);
    if (method == "PUT") return cli.Put(path, h, body, "application/json");
    return cli.Post(path, h, body, "application/json");
  }
  std::string MakeToken(const std::string& name, const std::string& role,
                        const std::string& node = "") {
    Json req = {{"name", name}, {"role", role}};
    if (!node.empty()) req["node"] = node;
    auto r = Call("POST", "/v1/tokens", admin_, req.dump());
    EXPECT_TRUE(r && r->status == 201) << (r ? r->body : "no response");
    return r && r->status == 201 ? Json::parse(r->body)["token"].get<std::string>() : "";
  }
  Json Node(const std::string& name) {
    auto r = Call("GET", "/v1/nodes/" + name, admin_);
    return r && r->status == 200 ? Json::parse(r->body) : Json();
  }
  // The node token writes its node's status: the agent "moved" to `address`, and the node
  // claims an observed address of its choosing.
  void RedirectNode(const std::string& address) {
    Json status = Node("victim")["status"];
    status["agentAddress"] = address;
    status["observedAddress"] = "10.9.9.9";
    auto r = Call("PUT", "/v1/nodes/victim/status", node_, Json{{"status", status}}.dump());
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    ASSERT_EQ(Node("victim")["status"].value("agentAddress", ""), address);
  }

  std::string dir_, url_, admin_, op_, reader_, node_, other_node_;
  int port_ = 0;
  std::unique_ptr<Process> server_, agent_;
};

TEST_F(AgentProxyTest, ANodeThatRedirectsItsAgentAddressGetsNoUsersTokenAndForgesNothing) {
  Impostor impostor("127.0.0.1");
  ASSERT_GT(impostor.port(), 0);
  RedirectNode("http://127.0.0.1:" + std::to_string(impostor.port()));

  auto logs = Mt(admin_, {"logs", "victim-0"});
  auto exec = Mt(admin_, {"exec", "victim-0", "--", "cat", "/etc/hostname"});
  auto tail = Call("GET", "/v1/allocations/victim-0/logs?tail=1", op_);

  for (const auto& r : impostor.Requests()) {
    EXPECT_EQ(r.find(admin_), std::string::npos) << "the admin token reached the node: " << r;
    EXPECT_EQ(r.find(op_), std::string::npos) << "the operator token reached the node: " << r;
  }
  EXPECT_EQ(logs.out.find("FORGED"), std::string::npos) << logs.out;
  EXPECT_EQ(exec.out.find("FORGED"), std::string::npos) << exec.out;
  EXPECT_NE(logs.exit_code, 0) << logs.out;
  EXPECT_NE(logs.err.find("did not prove it is node victim's agent"), std::string::npos)
      << logs.err;
  EXPECT_NE(exec.exit_code, 0) << exec.out;
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->status, 503) << tail->body;
  EXPECT_EQ(tail->body.find("FORGED"), std::string::npos) << tail->body;

  // The server stamps the address the write came from; the node's claim does not stand.
  EXPECT_EQ(Node("victim")["status"].value("observedAddress", ""), "127.0.0.1");
}

TEST_F(AgentProxyTest, TheServerCallsTheAddressItSawNotTheHostTheNodeWrites) {
  // A listener on another loopback address: the server dials the address the node's status
  // write came from (127.0.0.1), so this one hears nothing at all.
  Impostor elsewhere("127.0.0.2");
  if (elsewhere.port() <= 0) GTEST_SKIP() << "127.0.0.2 cannot be bound here";
  RedirectNode("http://127.0.0.2:" + std::to_string(elsewhere.port()));
  auto logs = Mt(admin_, {"logs", "victim-0"});
  EXPECT_EQ(logs.out.find("FORGED"), std::string::npos) << logs.out;
  EXPECT_TRUE(elsewhere.Requests().empty()) << elsewhere.Requests()[0];
}

TEST_F(AgentProxyTest, AnAgentAdmitsOnlyTheServersKeyForItsNode) {
  const std::string advertised = Node("victim")["status"].value("agentAddress", "");
  ASSERT_EQ(advertised.rfind("http://127.0.0.1:", 0), 0u) << advertised;
  const int agent_port = std::atoi(advertised.c_str() + advertised.rfind(':') + 1);
  const std::string logs = "/v1/allocations/victim-0/logs?tail=1";
  for (const std::string& token : {std::string(), admin_, op_, reader_, node_}) {
    auto r = Call("GET", logs, token, "", agent_port);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << "token " << token << ": " << r->body;
    EXPECT_EQ(r->body.find("the real output"), std::string::npos);
    auto exec =
        Call("POST", "/v1/allocations/victim-0/exec", token, R"({"command":["true"]})", agent_port);
    ASSERT_TRUE(exec);
    EXPECT_EQ(exec->status, 401) << exec->body;
  }
  // The key of another node does not open this agent either; its own does.
  auto other_key = Call("GET", "/v1/nodes/other/agentkey", other_node_);
  ASSERT_TRUE(other_key && other_key->status == 200);
  auto wrong = Call("GET", logs, Json::parse(other_key->body)["key"], "", agent_port);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto key = Call("GET", "/v1/nodes/victim/agentkey", node_);
  ASSERT_TRUE(key && key->status == 200) << (key ? key->body : "no response");
  httplib::Client cli("127.0.0.1", agent_port);
  auto right = cli.Get(
      logs, {{"Authorization", "Bearer " + Json::parse(key->body)["key"].get<std::string>()},
             {"X-Mentat-Agent-Challenge", "0123456789abcdef"}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200) << right->body;
  EXPECT_NE(right->body.find("the real output"), std::string::npos) << right->body;
  EXPECT_EQ(right->get_header_value("X-Mentat-Agent-Proof").size(), 64u)
      << "the agent proves its key";
}

TEST_F(AgentProxyTest, ANodeTokenFetchesItsOwnNodesKeyAndNoOther) {
  auto own = Call("GET", "/v1/nodes/victim/agentkey", node_);
  ASSERT_TRUE(own);
  EXPECT_EQ(own->status, 200) << own->body;
  auto by_admin = Call("GET", "/v1/nodes/victim/agentkey", admin_);
  ASSERT_TRUE(by_admin && by_admin->status == 200);
  EXPECT_EQ(Json::parse(own->body)["key"], Json::parse(by_admin->body)["key"]);
  for (const std::string& token : {other_node_, op_, reader_}) {
    auto r = Call("GET", "/v1/nodes/victim/agentkey", token);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 403) << r->body;
    EXPECT_EQ(r->body.find(Json::parse(own->body)["key"].get<std::string>()), std::string::npos);
  }
  auto anonymous = Call("GET", "/v1/nodes/victim/agentkey", "");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
}

TEST_F(AgentProxyTest, RolesAreCheckedByTheServerAndSessionsBelongToTheirCreator) {
  auto logs = Mt(op_, {"logs", "victim-0"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_EQ(logs.out, "the real output\n");
  auto refused = Call("GET", "/v1/allocations/victim-0/logs", reader_);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_NE(refused->body.find("role read-only"), std::string::npos) << refused->body;
  auto no_exec = Call("POST", "/v1/allocations/victim-0/exec", reader_, R"({"command":["true"]})");
  ASSERT_TRUE(no_exec);
  EXPECT_EQ(no_exec->status, 403) << no_exec->body;
  auto node_exec = Call("POST", "/v1/allocations/victim-0/exec", node_, R"({"command":["true"]})");
  ASSERT_TRUE(node_exec);
  EXPECT_EQ(node_exec->status, 403) << node_exec->body;
  auto missing = Call("GET", "/v1/allocations/nope-0/logs", op_);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404) << missing->body;

  auto created =
      Call("POST", "/v1/allocations/victim-0/exec", op_, R"({"command":["cat"],"stdin":true})");
  ASSERT_TRUE(created && created->status == 201) << (created ? created->body : "no response");
  std::string id = Json::parse(created->body)["id"];
  EXPECT_EQ(id.size(), 32u) << "the server's own random id: " << id;
  for (const std::string& token : {admin_, reader_}) {
    auto stolen = Call("POST", "/v1/exec/" + id + "/input", token, "x");
    ASSERT_TRUE(stolen);
    EXPECT_EQ(stolen->status, 403) << stolen->body;
    auto peek = Call("GET", "/v1/exec/" + id + "/output", token);
    ASSERT_TRUE(peek);
    EXPECT_EQ(peek->status, 403) << peek->body;
  }
  auto typed = Call("POST", "/v1/exec/" + id + "/input?eof=true", op_, "typed\n");
  ASSERT_TRUE(typed);
  EXPECT_EQ(typed->status, 200) << typed->body;
  auto out = Call("GET", "/v1/exec/" + id + "/output", op_);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 200) << out->body;
  EXPECT_NE(out->body.find(R"("data":"dHlwZWQK")"), std::string::npos) << out->body;  // "typed\n"
  EXPECT_NE(out->body.find(R"({"exit":0})"), std::string::npos) << out->body;
  // Read to its end, the session is gone from the server.
  auto after = Call("POST", "/v1/exec/" + id + "/input", op_, "x");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 404) << after->body;
}

}  // namespace
}  // namespace mentat::e2e
