// `--dev` with `--initial-cluster`: three dev servers on one machine as one control plane, each
// with its in-process agent as a node named after the server. A service of three runs across
// the nodes; the leader is kill -9'd, another takes over, and the tasks on the two nodes left
// keep running as they were (the same pids: no restart, no second allocation).
#include <signal.h>

#include <gtest/gtest.h>

#include <map>

#include "e2e/cluster_fixture.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

// allocation name -> {node, phase, pid}, read through member m.
std::map<std::string, Json> Allocations(const Member& m) {
  std::map<std::string, Json> out;
  auto [code, body] = HttpGet(m.api, "/v1/allocations?namespace=default");
  if (code != 200) return out;
  Json list = Json::parse(body, nullptr, false);
  if (!list.is_object()) return out;
  for (const auto& a : list.value("items", Json::array())) {
    out[a["metadata"].value("name", "")] = {{"node", a["spec"].value("nodeName", "")},
                                            {"phase", a.value("status", Json::object()).value("phase", "")},
                                            {"pid", a.value("status", Json::object()).value("pid", 0)}};
  }
  return out;
}

bool AllRunning(const std::map<std::string, Json>& allocs, size_t n) {
  if (allocs.size() != n) return false;
  for (const auto& [name, a] : allocs) {
    if (a["phase"] != "Running" || a["pid"] == 0) return false;
  }
  return true;
}

TEST_F(ClusterTest, DevServersMakeAClusterWhoseNodesKeepTheirTasksThroughAFailover) {
  extra_ = {"--dev"};
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  // Each server's in-process agent is a node named after it.
  ASSERT_TRUE(WaitFor([&] {
    auto [code, body] = HttpGet(members_[0].api, "/v1/nodes");
    return code == 200 && body.find("\"n1\"") != std::string::npos && body.find("\"n2\"") != std::string::npos &&
           body.find("\"n3\"") != std::string::npos;
  }, 30s)) << HttpGet(members_[0].api, "/v1/nodes").second;

  httplib::Client cli("127.0.0.1", Named(leader).api);
  cli.set_read_timeout(10, 0);
  auto put = cli.Put("/v1/services/sleeper",
                     "name: sleeper\ndriver: exec\ncount: 3\ncommand: /bin/sleep\nargs: [\"1000\"]\n",
                     "application/yaml");
  ASSERT_TRUE(put);
  ASSERT_EQ(put->status, 201) << put->body;
  std::map<std::string, Json> before;
  ASSERT_TRUE(WaitFor([&] { return AllRunning(before = Allocations(Named(leader)), 3); }, 60s))
      << HttpGet(Named(leader).api, "/v1/allocations").second;

  Named(leader).process->Signal(SIGKILL);
  ASSERT_TRUE(Named(leader).process->Wait(10s).has_value());
  Named(leader).process.reset();
  const std::string next = AgreedLeader();
  ASSERT_FALSE(next.empty());
  ASSERT_NE(next, leader);
  // The tasks on the nodes left run on, untouched: the same allocations with the same pids.
  auto after = Allocations(Named(next));
  for (const auto& [name, a] : before) {
    if (a["node"] == leader) continue;
    ASSERT_TRUE(after.count(name)) << name;
    EXPECT_EQ(after[name]["pid"], a["pid"]) << name << " was restarted";
    EXPECT_EQ(after[name]["phase"], "Running") << name;
    EXPECT_TRUE(ProcessAlive(a["pid"].get<int>())) << name;
  }
}

}  // namespace
}  // namespace mentat::e2e
