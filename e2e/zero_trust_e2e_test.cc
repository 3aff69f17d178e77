// Issue 17's findings 2 and 7 against a real mentat-server started as an operator would start
// it (tokens, no --default-policy, so the default applies), over HTTP on 127.0.0.1:
//  - a Service that names no security profile is held to the restricted NamespacePolicy: an
//    operator cannot get host root, host paths, the Docker socket or a privileged container by
//    leaving `security:` out; an admin's NamespacePolicy lets a namespace have more;
//  - a node token sees only what its node runs and cannot label itself into exec-internal
//    workloads or write events about others, through PUT or POST /v1/apply.
// The hostile node is this test speaking HTTP with a node token, as an attacker holding one
// would; one real mentat-agent shows that a --label the server refuses does not keep it from
// registering.
#include <gtest/gtest.h>
#include <httplib.h>

#include "apis/sha256.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

struct Reply {
  int status = 0;
  Json body;
};

class ZeroTrust : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("zero-trust");
    port_ = FreePort();
    // No --auth, no --default-policy: what a fresh production server does.
    server_ = std::make_unique<Process>(
        std::vector<std::string>{Runfile("cmd/mentat-server/mentat-server"), "--listen",
                                 "127.0.0.1:" + std::to_string(port_), "--data-dir", dir_ + "/data",
                                 "--bootstrap-token-file", dir_ + "/admin.token", "--bookmark-interval", "1"},
        dir_ + "/server.log");
    ASSERT_TRUE(WaitFor([&] { return HttpGet(port_, "/healthz").first == 200; }, 15s))
        << ReadFile(dir_ + "/server.log");
    admin_ = ReadFile(dir_ + "/admin.token");
    admin_.erase(admin_.find_last_not_of('\n') + 1);
    operator_ = MakeToken("deployer", "operator");
  }

  Reply Call(const std::string& token, const std::string& method, const std::string& path,
             const std::string& body = "") {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_read_timeout(10, 0);
    cli.set_bearer_token_auth(token.c_str());
    httplib::Result r = method == "GET"    ? cli.Get(path)
                        : method == "PUT"  ? cli.Put(path, body, "application/yaml")
                        : method == "POST" ? cli.Post(path, body, "application/yaml")
                                           : cli.Delete(path);
    if (!r) return {};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }
  std::string MakeToken(const std::string& name, const std::string& role, const std::string& node = "") {
    Json req = {{"name", name}, {"role", role}};
    if (!node.empty()) req["node"] = node;
    auto r = Call(admin_, "POST", "/v1/tokens", req.dump());
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body.value("token", "");
  }
  // A node as its agent registers it: its Node, then a heartbeat with healthy drivers.
  void RegisterNode(const std::string& node, const std::string& token) {
    auto put = Call(token, "PUT", "/v1/nodes/" + node, "kind: Node\nmetadata:\n  name: " + node + "\n");
    ASSERT_EQ(put.status, 201) << put.body.dump();
    Json status = {{"status",
                    {{"ready", true},
                     {"lastHeartbeat", Call(admin_, "GET", "/v1/nodes/" + node).body["metadata"]["creationTimestamp"]},
                     {"drivers", {{"exec", {{"healthy", true}}}, {"sandbox", {{"healthy", true}}}}}}}};
    auto hb = Call(token, "PUT", "/v1/nodes/" + node + "/status", status.dump());
    ASSERT_EQ(hb.status, 200) << hb.body.dump();
  }
  static std::string FirstField(const Reply& r) {
    const Json& d = r.body.value("details", Json::array());
    return d.empty() ? "" : d[0].value("field", "");
  }

  std::string dir_, admin_, operator_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

// Finding 2: each of the tester's manifests, without `security:`, from an operator token.
TEST_F(ZeroTrust, AnOperatorWhoNamesNoProfileIsHeldToTheRestrictedDefault) {
  struct Case {
    std::string name, yaml, field;
  };
  const Case cases[] = {
      {"root", "driver: exec\ncommand: /bin/sh\nuser: root\n", "user"},
      {"nouser", "driver: exec\ncommand: /bin/sh\n", "user"},
      {"host", "driver: exec\ncommand: /bin/sh\nuser: nobody\nvolumes: [\"/:/host\"]\n", "volumes[0].source"},
      {"sock", "driver: exec\ncommand: /bin/sh\nuser: nobody\nvolumes: [\"/var/run/docker.sock:/s\"]\n",
       "volumes[0].source"},
      {"etc", "driver: exec\ncommand: /bin/sh\nuser: nobody\nvolumes: [\"/etc:/e\"]\n", "volumes[0].source"},
      {"priv", "driver: docker\nimage: busybox\ndocker:\n  privileged: true\n", "docker.privileged"},
      {"pid", "driver: docker\nimage: busybox\ndocker:\n  pid_mode: host\n", "docker.pid_mode"},
      {"caps", "driver: docker\nimage: busybox\ndocker:\n  cap_add: [SYS_ADMIN]\n", "docker.cap_add[0]"},
      {"internal", "driver: exec\ncommand: /bin/sh\nsecurity:\n  profile: exec-internal\n", "security.profile"},
  };
  for (const auto& c : cases) {
    auto r = Call(operator_, "PUT", "/v1/services/" + c.name, "name: " + c.name + "\n" + c.yaml);
    EXPECT_EQ(r.status, 403) << c.yaml << r.body.dump();
    EXPECT_EQ(FirstField(r), c.field) << r.body.dump();
    // The same through apply, the way mt sends it: refused, nothing written.
    auto applied = Call(operator_, "POST", "/v1/apply", "name: " + c.name + "\n" + c.yaml);
    EXPECT_EQ(applied.status, 403) << applied.body.dump();
  }
  EXPECT_EQ(Call(admin_, "GET", "/v1/services").body["items"].size(), 0u) << "nothing was stored";

  // What the policy allows is stored with the profile it gave.
  auto ok = Call(operator_, "PUT", "/v1/services/web", "name: web\ndriver: exec\ncommand: /bin/sleep\n"
                                                       "args: [\"60\"]\nuser: nobody\n");
  ASSERT_EQ(ok.status, 201) << ok.body.dump();
  EXPECT_EQ(ok.body["spec"]["security"]["profile"], "exec-restricted");
  auto docker = Call(operator_, "PUT", "/v1/services/api", "name: api\ndriver: docker\nimage: busybox\n");
  ASSERT_EQ(docker.status, 201) << docker.body.dump();
  EXPECT_EQ(docker.body["spec"]["security"]["profile"], "docker-hardened");
  // An admin, too, is held to it (the policy is changed, not gone around).
  EXPECT_EQ(Call(admin_, "PUT", "/v1/services/root", "name: root\ndriver: exec\ncommand: /bin/sh\nuser: root\n").status,
            403);
}

TEST_F(ZeroTrust, AnAdminsNamespacePolicyGivesANamespaceMoreAndOnlyAnAdminWritesOne) {
  const std::string policy =
      "kind: NamespacePolicy\nmetadata:\n  name: ops\nspec:\n  namespaces: [ops]\n"
      "  allowedProfiles: [exec-internal, sandbox]\n  defaultProfiles:\n    exec: exec-internal\n";
  auto refused = Call(operator_, "PUT", "/v1/namespacepolicies/ops", policy);
  EXPECT_EQ(refused.status, 403) << refused.body.dump();
  auto made = Call(admin_, "PUT", "/v1/namespacepolicies/ops", policy);
  ASSERT_EQ(made.status, 201) << made.body.dump();
  // Root exec in ops, with exec-internal as the default; still refused in default.
  const std::string root = "name: agent\ndriver: exec\ncommand: /bin/sh\nuser: root\n";
  auto in_ops = Call(operator_, "PUT", "/v1/services/agent?namespace=ops", root);
  ASSERT_EQ(in_ops.status, 201) << in_ops.body.dump();
  EXPECT_EQ(in_ops.body["spec"]["security"]["profile"], "exec-internal");
  EXPECT_EQ(Call(operator_, "PUT", "/v1/services/agent", root).status, 403);
  // Docker has no default in ops and docker-hardened is not allowed there.
  auto docker = Call(operator_, "PUT", "/v1/services/api?namespace=ops", "name: api\ndriver: docker\nimage: x\n");
  EXPECT_EQ(docker.status, 403);
  EXPECT_NE(docker.body.dump().find("no default for driver docker"), std::string::npos) << docker.body.dump();
  // A namespace has one policy; a default must be a profile of that driver.
  auto overlap = Call(admin_, "PUT", "/v1/namespacepolicies/ops2",
                      "kind: NamespacePolicy\nmetadata:\n  name: ops2\nspec:\n  namespaces: [web, ops]\n"
                      "  allowedProfiles: [\"*\"]\n");
  EXPECT_EQ(overlap.status, 409) << overlap.body.dump();
  EXPECT_NE(overlap.body.dump().find("governed by NamespacePolicy ops"), std::string::npos);
  auto mismatch = Call(admin_, "PUT", "/v1/namespacepolicies/web",
                       "kind: NamespacePolicy\nmetadata:\n  name: web\nspec:\n  namespaces: [web]\n"
                       "  allowedProfiles: [sandbox]\n  defaultProfiles:\n    exec: sandbox\n");
  EXPECT_EQ(mismatch.status, 400) << mismatch.body.dump();
  EXPECT_EQ(FirstField(mismatch), "spec.defaultProfiles.exec");
  // "*" for every other namespace replaces the built-in default.
  ASSERT_EQ(Call(admin_, "PUT", "/v1/namespacepolicies/everyone",
                 "kind: NamespacePolicy\nmetadata:\n  name: everyone\nspec:\n  namespaces: [\"*\"]\n"
                 "  allowedProfiles: [\"*\"]\n  hostSystemPaths: allowed\n").status,
            201);
  EXPECT_EQ(Call(operator_, "PUT", "/v1/services/agent", root).status, 201);
}

TEST_F(ZeroTrust, DevModeSaysItIsPermissive) {
  int port = FreePort();
  Process dev({Runfile("cmd/mentat-server/mentat-server"), "--dev", "--listen",
               "127.0.0.1:" + std::to_string(port), "--data-dir", dir_ + "/dev"},
              dir_ + "/dev.log");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir_ + "/dev.log").find("listening") != std::string::npos; }, 15s))
      << ReadFile(dir_ + "/dev.log");
  EXPECT_NE(ReadFile(dir_ + "/dev.log").find("without a NamespacePolicy are permissive (--dev)"), std::string::npos)
      << ReadFile(dir_ + "/dev.log");
  EXPECT_EQ(ReadFile(dir_ + "/server.log").find("permissive"), std::string::npos)
      << "the production server is not permissive";
}

// Finding 7: node-b's token reads nothing of what runs on node-a; node-a cannot label itself
// into exec-internal workloads or write events about others.
TEST_F(ZeroTrust, ANodeTokenSeesOnlyWhatItsNodeRuns) {
  std::string a = MakeToken("node-a", "node", "node-a");
  std::string b = MakeToken("node-b", "node", "node-b");
  RegisterNode("node-a", a);
  // An artifact, and a service holding a secret that uses it, placed on node-a (the one ready
  // node).
  const std::string bytes = "not really a tarball, but bytes all the same\n";
  const std::string digest = Sha256::Of(bytes);
  ASSERT_EQ(Call(admin_, "PUT", "/v1/artifacts/" + digest, bytes).status, 201);
  auto svc = Call(operator_, "PUT", "/v1/services/db",
                  "name: db\ndriver: sandbox\nrootfs: " + digest + "\ncommand: /bin/sleep\n"
                  "env:\n  DB_PASSWORD: hunter2\n");
  ASSERT_EQ(svc.status, 201) << svc.body.dump();
  Json alloc;
  ASSERT_TRUE(WaitFor([&] {
    alloc = Call(admin_, "GET", "/v1/allocations/db-0").body;
    return alloc.is_object() && alloc.contains("metadata") &&
           alloc["metadata"].value("labels", Json::object()).value("mentat.io/node", "") == "node-a";
  }, 20s)) << alloc.dump();
  const std::string placed_at = alloc["metadata"]["resourceVersion"];

  // node-a reads its own; node-b nothing of it.
  EXPECT_EQ(Call(a, "GET", "/v1/allocations/db-0").status, 200);
  EXPECT_EQ(Call(b, "GET", "/v1/allocations/db-0").status, 403);
  EXPECT_EQ(Call(a, "GET", "/v1/allocations").body["items"].size(), 1u);
  auto b_list = Call(b, "GET", "/v1/allocations");
  ASSERT_EQ(b_list.status, 200);
  EXPECT_EQ(b_list.body["items"].size(), 0u) << b_list.body.dump();
  for (const char* path : {"/v1/services", "/v1/services/db", "/v1/servicerevisions", "/v1/nodes",
                           "/v1/nodes/node-a", "/v1/events", "/v1/namespacepolicies", "/v1/artifacts"}) {
    auto r = Call(b, "GET", path);
    EXPECT_EQ(r.status, 403) << path << " " << r.body.dump();
    EXPECT_EQ(r.body.dump().find("hunter2"), std::string::npos) << path;
  }
  EXPECT_EQ(Call(a, "GET", "/v1/artifacts/" + digest).status, 200);
  EXPECT_EQ(Call(b, "GET", "/v1/artifacts/" + digest).status, 403);
  EXPECT_EQ(Call(b, "GET", "/v1/securityprofiles/sandbox").status, 200) << "agents read profiles";

  // A watch from the start, narrowed the same way: node-b's replay, read up to a bookmark past
  // the placement, holds no allocation of node-a's.
  std::string seen;
  bool past = false;
  httplib::Client cli("127.0.0.1", port_);
  cli.set_read_timeout(10, 0);
  cli.set_bearer_token_auth(b.c_str());
  cli.Get("/v1/allocations?watch=true&resourceVersion=1", [&](const char* data, size_t n) {
    seen.append(data, n);
    size_t at = 0, nl;
    while ((nl = seen.find('\n', at)) != std::string::npos) {
      Json ev = Json::parse(seen.substr(at, nl - at), nullptr, false);
      at = nl + 1;
      if (ev.value("type", "") == "BOOKMARK" &&
          std::stoll(ev["object"]["metadata"].value("resourceVersion", "0")) >= std::stoll(placed_at)) {
        past = true;
      }
    }
    return !past;
  });
  EXPECT_TRUE(past) << seen;
  EXPECT_EQ(seen.find("db-0"), std::string::npos) << seen;

  // Labels placement depends on are the admins': not by PUT, not by apply.
  auto node = Call(a, "GET", "/v1/nodes/node-a").body;
  node.erase("status");
  node["metadata"]["labels"]["internal-only"] = "true";
  auto labelled = Call(a, "PUT", "/v1/nodes/node-a", node.dump());
  EXPECT_EQ(labelled.status, 403) << labelled.body.dump();
  EXPECT_EQ(FirstField(labelled), "metadata.labels.internal-only");
  node["metadata"].erase("resourceVersion");
  EXPECT_EQ(Call(a, "POST", "/v1/apply", node.dump()).status, 403);
  node["metadata"]["labels"].erase("internal-only");
  node["metadata"]["labels"]["zone"] = "a";
  EXPECT_EQ(Call(a, "POST", "/v1/apply", node.dump()).status, 200) << "other labels are the node's own";
  // Events: about itself through apply, yes; about node-b or node-b's business, no.
  auto event = [](const std::string& name, const std::string& kind, const std::string& about) {
    return Json{{"kind", "Event"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec", {{"involvedObject", {{"kind", kind}, {"name", about}}}, {"reason", "Test"},
                          {"message", "m"}}}}.dump();
  };
  EXPECT_EQ(Call(a, "POST", "/v1/apply", event("e1", "Node", "node-a")).status, 200);
  EXPECT_EQ(Call(a, "POST", "/v1/apply", event("e2", "Node", "node-b")).status, 403);
  EXPECT_EQ(Call(b, "POST", "/v1/apply", event("e3", "Allocation", "db-0")).status, 403);
  EXPECT_EQ(Call(a, "POST", "/v1/apply", event("e4", "Service", "db")).status, 403);
  EXPECT_EQ(Call(a, "GET", "/v1/events/e1").status, 200) << "its own events it reads back";
  EXPECT_EQ(Call(b, "GET", "/v1/events/e1").status, 403);
}

// A real agent told to label itself internal-only registers without that label, and says why.
TEST_F(ZeroTrust, AnAgentsRefusedLabelIsLeftOutAndTheNodeRegisters) {
  std::string token = MakeToken("node-c", "node", "node-c");
  Process agent({Runfile("cmd/mentat-agent/mentat-agent"), "--server", "http://127.0.0.1:" + std::to_string(port_),
                 "--token", token, "--node-name", "node-c", "--data-dir", dir_ + "/agent", "--label",
                 "internal-only=true", "--label", "zone=c"},
                dir_ + "/agent.log");
  Json node;
  ASSERT_TRUE(WaitFor([&] {
    node = Call(admin_, "GET", "/v1/nodes/node-c").body;
    return node.is_object() && node.value("status", Json::object()).value("ready", false);
  }, 20s)) << ReadFile(dir_ + "/agent.log");
  EXPECT_EQ(node["metadata"]["labels"].value("zone", ""), "c");
  EXPECT_FALSE(node["metadata"]["labels"].contains("internal-only")) << node.dump();
  EXPECT_NE(ReadFile(dir_ + "/agent.log").find("label internal-only of node node-c not set"), std::string::npos)
      << ReadFile(dir_ + "/agent.log");
  // An admin may set it; the agent's next registration keeps it.
  node.erase("status");
  node["metadata"]["labels"]["internal-only"] = "true";
  ASSERT_EQ(Call(admin_, "PUT", "/v1/nodes/node-c", node.dump()).status, 200);
}

}  // namespace
}  // namespace mentat::e2e
