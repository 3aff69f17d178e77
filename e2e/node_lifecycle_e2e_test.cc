// Node lifecycle with two real agents: when one is killed (kill -9: its workloads keep
// running, as after a node's agent crash), its node turns NotReady after the heartbeat
// timeout, its allocations are marked Lost and placed on the other node after --node-lost-after;
// when the agent comes back it finds them placed elsewhere and stops its own copies, so every
// slot runs exactly once.
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>
#include <set>

#include "e2e/server_fixture.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class NodeLifecycleTest : public ServerFixture {
 protected:
  void SetUp() override {
    StartWith("nodes", {"--node-heartbeat-timeout", "2s", "--node-lost-after", "4s"});
  }
  std::unique_ptr<Process> StartAgent(const std::string& node, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {Runfile("cmd/mentat-agent/mentat-agent"), "--server",
                                     "http://127.0.0.1:" + std::to_string(port_), "--node-name", node,
                                     "--data-dir", dir_ + "/" + node, "--heartbeat-interval", "300ms"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(argv, dir_ + "/" + node + ".log");
  }
  bool NodesReady(std::vector<std::string> names) {
    auto r = Mt({"get", "nodes"});
    for (const auto& n : names) {
      if (!std::regex_search(r.out, std::regex(n + " +Ready"))) return false;
    }
    return true;
  }
  // name -> {node, pid, ready} for every allocation of the service.
  struct Placement {
    std::string node;
    int pid = 0;
    bool ready = false;
  };
  std::map<std::string, Placement> Allocations() {
    std::map<std::string, Placement> out;
    Json list = Get("/v1/allocations?namespace=default");
    if (!list.is_object()) return out;
    for (const auto& a : list["items"]) {
      const Json& st = a.value("status", Json::object());
      out[a["metadata"]["name"]] = {a["spec"].value("nodeName", ""), st.value("pid", 0),
                                    st.value("ready", false)};
    }
    return out;
  }
};

TEST_F(NodeLifecycleTest, ASilentNodesAllocationsMoveAndComeBackWithoutDuplicates) {
  auto a = StartAgent("node-a");
  auto b = StartAgent("node-b");
  ASSERT_TRUE(WaitFor([&] {
    auto r = Mt({"get", "nodes"});
    return std::regex_search(r.out, std::regex("node-a +Ready")) &&
           std::regex_search(r.out, std::regex("node-b +Ready"));
  }, 15s)) << a->Log() << b->Log();

  std::string f = dir_ + "/web.yaml";
  WriteFile(f, "name: web\ndriver: exec\ncommand: /bin/sleep\nargs: ['3600']\ncount: 2\n");
  ASSERT_EQ(Mt({"apply", "-f", f}).exit_code, 0);
  std::map<std::string, Placement> before;
  ASSERT_TRUE(WaitFor([&] {
    before = Allocations();
    int ready = 0;
    for (const auto& [n, p] : before) ready += p.ready && p.pid > 0;
    return ready == 2;
  }, 20s)) << Mt({"get", "allocations", "-o", "wide"}).out;
  // Spread: one on each node.
  std::string on_a;
  for (const auto& [n, p] : before) {
    if (p.node == "node-a") on_a = n;
  }
  ASSERT_FALSE(on_a.empty()) << "expected one allocation per node";
  const int stranded_pid = before[on_a].pid;

  // The agent on node-a dies; its workload keeps running, unseen.
  a->Signal(SIGKILL);
  ASSERT_TRUE(a->Wait(5s).has_value());
  auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] {
    Json node = Get("/v1/nodes/node-a");
    return node.is_object() && !node["status"].value("ready", true);
  }, 10s)) << ReadFile(dir_ + "/server.log");
  auto nodes = Mt({"get", "nodes"});
  EXPECT_TRUE(std::regex_search(nodes.out, std::regex("node-a +NotReady"))) << nodes.out;

  // Within the grace period (4 s after the last heartbeat) plus scheduling, the allocation runs
  // on node-b.
  ASSERT_TRUE(WaitFor([&] {
    auto now = Allocations();
    return now.size() == 2 && now[on_a].node == "node-b" && now[on_a].ready && now[on_a].pid > 0;
  }, 15s)) << Mt({"get", "allocations", "-o", "wide"}).out << ReadFile(dir_ + "/server.log");
  // Not before the grace period: the last heartbeat was at most 300 ms before the kill.
  auto moved_after = std::chrono::steady_clock::now() - killed_at;
  EXPECT_GE(moved_after, 3700ms);
  EXPECT_LT(moved_after, 12s);
  auto events = HttpGet(port_, "/v1/events?namespace=default").second;
  EXPECT_NE(events.find("AllocationLost"), std::string::npos) << events;
  EXPECT_TRUE(ProcessAlive(stranded_pid)) << "nothing on node-a could have stopped it";

  // node-a's agent returns: it sees its allocation placed elsewhere and stops its copy.
  a = StartAgent("node-a");
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(stranded_pid); }, 15s))
      << "the stranded copy still runs: a duplicate\n"
      << a->Log();
  ASSERT_TRUE(WaitFor([&] {
    auto r = Mt({"get", "nodes"});
    return std::regex_search(r.out, std::regex("node-a +Ready"));
  }, 15s));
  // Exactly one running copy per slot, both on node-b, unchanged by node-a's return.
  auto after = Allocations();
  ASSERT_EQ(after.size(), 2u);
  std::set<int> pids;
  for (const auto& [n, p] : after) {
    EXPECT_EQ(p.node, "node-b") << n;
    EXPECT_TRUE(p.ready) << n;
    EXPECT_TRUE(ProcessAlive(p.pid)) << n;
    pids.insert(p.pid);
  }
  EXPECT_EQ(pids.size(), 2u);
}

TEST_F(NodeLifecycleTest, PlacementFollowsProfilesResourcesAndSaysWhyNot) {
  auto a = StartAgent("public-1");
  ASSERT_TRUE(WaitFor([&] { return NodesReady({"public-1"}); }, 15s)) << a->Log();
  Json node = Get("/v1/nodes/public-1");
  // The fingerprint the scheduler uses.
  const Json& cap = node["status"]["capacity"];
  EXPECT_GT(cap.value("cpus", 0), 0) << cap.dump();
  EXPECT_GT(cap.value("memory_mb", 0), 0) << cap.dump();
  EXPECT_GT(cap.value("disk_mb", 0), 0) << cap.dump();

  // exec-internal runs only on nodes labelled internal-only (seed 001): none yet.
  std::string f = dir_ + "/collector.yaml";
  WriteFile(f, "name: collector\ndriver: exec\ncommand: /bin/sleep\nargs: ['3600']\n"
               "security: {profile: exec-internal}\n");
  ASSERT_EQ(Mt({"apply", "-f", f}).exit_code, 0);
  const std::string why = "0/1 nodes available: 1 not labelled internal-only \\(profile exec-internal\\)";
  ASSERT_TRUE(WaitFor([&] {
    return std::regex_search(Mt({"describe", "service", "collector"}).out, std::regex(why));
  }, 15s)) << Mt({"describe", "service", "collector"}).out;

  // An internal-only node joins: the collector lands there, and only there.
  auto ops = StartAgent("ops-1", {"--label", "internal-only=true"});
  ASSERT_TRUE(WaitFor([&] {
    Json alloc = Get("/v1/allocations/collector-0");
    return alloc.is_object() && alloc["spec"]["nodeName"] == "ops-1" &&
           alloc.value("status", Json::object()).value("ready", false);
  }, 20s)) << Mt({"get", "allocations", "-o", "wide"}).out << ops->Log();
  EXPECT_EQ(Get("/v1/nodes/ops-1")["metadata"]["labels"]["internal-only"], "true");

  // A request no node can hold is refused with the reason, per node.
  std::string big = dir_ + "/big.yaml";
  WriteFile(big, "name: big\ndriver: exec\ncommand: /bin/sleep\nargs: ['3600']\nmemory_mb: 1048576\n");
  ASSERT_EQ(Mt({"apply", "-f", big}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] {
    return std::regex_search(Mt({"describe", "service", "big"}).out,
                             std::regex("0/2 nodes available: 2 insufficient memory"));
  }, 15s)) << Mt({"describe", "service", "big"}).out;
}

}  // namespace
}  // namespace mentat::e2e
