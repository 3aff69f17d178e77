// mt logs against a real server and agent: --tail, and -f that keeps going across a restart of
// the workload and picks up a new allocation of the service as it appears.
#include <signal.h>

#include <gtest/gtest.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

TEST(MtLogs, TailAndFollowAcrossRestartsAndNewAllocations) {
  std::string dir = TempDir("mt-logs");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log", {"--dev", "--node-name", "logs-node"});
  ASSERT_TRUE(server);
  std::vector<std::string> env = {"MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port), "HOME=" + dir};
  auto mt = [&](std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommand(args, env);
  };
  std::string manifest =
      "name: ticker\ndriver: exec\ncommand: /bin/sh\n"
      "args: [\"-c\", \"i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done\"]\n";
  WriteFile(dir + "/ticker.yaml", manifest);
  ASSERT_EQ(mt({"apply", "-f", dir + "/ticker.yaml"}).exit_code, 0);
  ASSERT_EQ(mt({"wait", "--for=condition=Ready", "service/ticker", "--timeout=30s"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return mt({"logs", "ticker-0"}).out.find("tick 3\n") != std::string::npos; }, 10s));

  auto tail = mt({"logs", "ticker-0", "--tail", "2"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  EXPECT_EQ(std::count(tail.out.begin(), tail.out.end(), '\n'), 2) << tail.out;
  EXPECT_EQ(tail.out.rfind("tick ", 0), 0u) << tail.out;

  // Follow the service from now on, in the background.
  std::vector<std::string> argv = {"/usr/bin/env", env[0], env[1], Runfile("cmd/mt/mt"), "logs",
                                   "ticker", "-f", "--tail", "0"};
  Process follow(argv, dir + "/follow.out");
  // The workload dies and is restarted: its counter starts over, in the same log.
  auto alloc = Json::parse(HttpGet(port, "/v1/allocations/ticker-0").second);
  int pid = alloc["status"].value("pid", 0);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("[ticker-0] tick") != std::string::npos; }, 10s))
      << ReadFile(dir + "/follow.out");
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("[ticker-0] tick 0\n") != std::string::npos; }, 20s))
      << "the follow did not carry on after the restart:\n" << ReadFile(dir + "/follow.out");
  // A second allocation joins the follow as it appears.
  WriteFile(dir + "/ticker.yaml", manifest + "count: 2\n");
  ASSERT_EQ(mt({"apply", "-f", dir + "/ticker.yaml"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("[ticker-1] tick") != std::string::npos; }, 20s))
      << ReadFile(dir + "/follow.out");
  EXPECT_TRUE(follow.Running()) << "mt logs -f stopped";

  // The agent's endpoint refuses hostile names and counts with a 400 naming the field.
  auto node = Json::parse(HttpGet(port, "/v1/nodes/logs-node").second);
  std::string agent = node["status"].value("agentAddress", "");
  ASSERT_EQ(agent.rfind("http://127.0.0.1:", 0), 0u) << node.dump();
  int agent_port = std::atoi(agent.c_str() + agent.rfind(':') + 1);
  for (const std::string& bad : {"/v1/allocations/ticker-0/logs?namespace=..%2F..%2Fetc",
                                 "/v1/allocations/ticker-0/logs?tail=-3",
                                 "/v1/allocations/ticker-0/logs?offset=abc",
                                 "/v1/allocations/..%2E/logs"}) {
    auto [code, body] = HttpGet(agent_port, bad);
    EXPECT_EQ(code, 400) << bad << ": " << body;
  }

  auto missing = mt({"logs", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no allocation or service named \"nope\""), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace mentat::e2e
