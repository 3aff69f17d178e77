// Recovery without restarts, with real processes: kill -9 of the agent with five services
// running leaves every pid unchanged after it restarts; kill -9 of the server while its
// controllers are creating allocations leaves, after restart, exactly one running process per
// allocation slot (counted from /proc, by a marker in each service's environment): nothing
// duplicated, nothing missing.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "e2e/server_fixture.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
namespace fs = std::filesystem;

class RecoveryTest : public ServerFixture {
 protected:
  void SetUp() override {
    marker_ = "MENTAT_E2E_MARKER=" + std::to_string(getpid()) + "-" + std::to_string(::time(nullptr));
  }
  void TearDown() override {
    if (server_ && !server_->Running()) Restart();
    ServerFixture::TearDown();
  }
  // n services of `count` sleeping replicas, each process marked in its environment.
  std::string Manifests(int n, int count) {
    std::string out;
    for (int i = 0; i < n; ++i) {
      out += "---\nname: svc-" + std::to_string(i) + "\ndriver: exec\ncommand: /bin/sleep\n"
             "args: ['3600']\ncount: " + std::to_string(count) + "\nenv: [\"" + marker_ + "-svc-" +
             std::to_string(i) + "\"]\n";
    }
    return out;
  }
  // Running processes per service, from their environments.
  std::map<std::string, int> MarkedProcesses() {
    std::map<std::string, int> out;
    const std::string prefix = marker_ + "-";
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::string pid = e.path().filename();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream f(e.path() / "environ", std::ios::binary);
      std::string env((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      size_t at = env.find(prefix);
      if (at == std::string::npos || !ProcessAlive(std::stoi(pid))) continue;
      out[env.substr(at + prefix.size(), env.find('\0', at) - at - prefix.size())]++;
    }
    return out;
  }
  // name -> pid of every allocation that is Ready; nullopt while any is not.
  std::optional<std::map<std::string, int>> ReadyPids(size_t want) {
    Json list = Get("/v1/allocations?namespace=default");
    if (!list.is_object() || list["items"].size() != want) return std::nullopt;
    std::map<std::string, int> out;
    for (const auto& a : list["items"]) {
      const Json& st = a.value("status", Json::object());
      if (!st.value("ready", false) || st.value("pid", 0) <= 0) return std::nullopt;
      out[a["metadata"]["name"]] = st["pid"];
    }
    return out;
  }

  std::string marker_;
};

TEST_F(RecoveryTest, Kill9OfTheAgentWithFiveServicesKeepsEveryPid) {
  StartWith("recovery-agent", {});
  std::vector<std::string> agent_argv = {Runfile("cmd/mentat-agent/mentat-agent"), "--server",
                                         "http://127.0.0.1:" + std::to_string(port_), "--node-name",
                                         "worker", "--data-dir", dir_ + "/agent"};
  auto agent = std::make_unique<Process>(agent_argv, dir_ + "/agent.log");
  WriteFile(dir_ + "/five.yaml", Manifests(5, 2));
  ASSERT_EQ(Mt({"apply", "-f", dir_ + "/five.yaml"}).exit_code, 0);
  std::optional<std::map<std::string, int>> before;
  ASSERT_TRUE(WaitFor([&] { return (before = ReadyPids(10)).has_value(); }, 30s)) << agent->Log();

  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(5s).has_value());
  for (const auto& [name, pid] : *before) EXPECT_TRUE(ProcessAlive(pid)) << name;
  agent = std::make_unique<Process>(agent_argv, dir_ + "/agent.log");
  ASSERT_TRUE(WaitFor([&] {
    std::string log = agent->Log();
    int recovered = 0;
    for (size_t at = 0; (at = log.find("without restarting it", at)) != std::string::npos; ++at) ++recovered;
    return recovered == 10;
  }, 20s)) << agent->Log();

  // Every allocation is Ready again with the very same process, and none counts a restart.
  std::optional<std::map<std::string, int>> after;
  ASSERT_TRUE(WaitFor([&] { return (after = ReadyPids(10)).has_value(); }, 20s));
  EXPECT_EQ(*after, *before);
  for (const auto& a : Get("/v1/allocations?namespace=default")["items"]) {
    EXPECT_EQ(a["status"].value("restarts", -1), 0) << a["metadata"]["name"];
  }
  std::map<std::string, int> want;
  for (int i = 0; i < 5; ++i) want["svc-" + std::to_string(i)] = 2;
  EXPECT_EQ(MarkedProcesses(), want);
  agent->Signal(SIGTERM);
  agent->Wait(10s);
  server_->Signal(SIGTERM);
  server_->Wait(10s);
  // Clean up with an agent, so the workloads are stopped.
  Restart();
  agent = std::make_unique<Process>(agent_argv, dir_ + "/agent.log");
  Mt({"delete", "services", "--all"});
  EXPECT_TRUE(WaitFor([&] { return MarkedProcesses().empty(); }, 30s));
}

TEST_F(RecoveryTest, Kill9OfTheServerMidApplyLeavesNoDuplicateOrMissingAllocation) {
  StartWith("recovery-server", {"--dev", "--node-name", "e2e-node"});
  WriteFile(dir_ + "/many.yaml", Manifests(20, 2));
  ASSERT_EQ(Mt({"apply", "-f", dir_ + "/many.yaml"}).exit_code, 0);
  // kill -9 while the controller is part-way through creating the 40 allocations.
  ASSERT_TRUE(WaitFor([&] {
    Json l = Get("/v1/allocations?namespace=default");
    return l.is_object() && !l["items"].empty();
  }, 20s));
  server_->Signal(SIGKILL);
  ASSERT_TRUE(server_->Wait(5s).has_value());
  size_t at_kill = MarkedProcesses().size();
  EXPECT_LT(at_kill, 20u) << "the kill came too late to be mid-apply";

  Restart();
  ASSERT_TRUE(WaitFor([&] { return ReadyPids(40).has_value(); }, 60s))
      << Mt({"get", "allocations"}).out << server_->Log();
  // The slots are exactly svc-N-0 and svc-N-1, and each runs exactly one process.
  auto pids = *ReadyPids(40);
  for (int i = 0; i < 20; ++i) {
    for (int slot = 0; slot < 2; ++slot) {
      EXPECT_EQ(pids.count("svc-" + std::to_string(i) + "-" + std::to_string(slot)), 1u);
    }
  }
  std::map<std::string, int> want;
  for (int i = 0; i < 20; ++i) want["svc-" + std::to_string(i)] = 2;
  EXPECT_EQ(MarkedProcesses(), want);
}

}  // namespace
}  // namespace mentat::e2e
