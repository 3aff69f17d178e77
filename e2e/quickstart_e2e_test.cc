// The walking skeleton, end to end, with the real binaries: mentat-server --dev on a free port
// and a temp dir, `mt apply` of the quickstart example, Ready, a page served by the workload,
// a server restart that keeps the service stored and its process running, and a delete that
// removes the process. Also: the agent as a separate process, recovering after kill -9 (and
// reporting it with an Adopted event).
#include <signal.h>

#include <regex>

#include <gtest/gtest.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class QuickstartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("quickstart");
    ASSERT_FALSE(dir_.empty());
    server_port_ = FreePort();
    app_port_ = FreePort();
    addr_ = "http://127.0.0.1:" + std::to_string(server_port_);
    // The quickstart manifest as shipped, on a port of the test's own choosing.
    std::string hello = ReadFile(Runfile("examples/quickstart/hello.yaml"));
    ASSERT_NE(hello.find("18080"), std::string::npos);
    hello = std::regex_replace(hello, std::regex("18080"), std::to_string(app_port_));
    manifest_ = dir_ + "/hello.yaml";
    WriteFile(manifest_, hello);
  }

  void TearDown() override {
    // Leave nothing running, whatever happened above.
    if (workload_pid_ > 0 && ProcessAlive(workload_pid_)) kill(-workload_pid_, SIGKILL);
  }

  std::unique_ptr<Process> StartServer(const std::vector<std::string>& extra = {"--dev"}) {
    std::vector<std::string> args = {"--node-name", "e2e-node"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = e2e::StartServer(server_port_, dir_ + "/data", dir_ + "/server.log", args);
    EXPECT_TRUE(p) << "server did not come up:\n" << ReadFile(dir_ + "/server.log");
    return p;
  }

  CommandResult Mt(std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommand(args, {"MENTAT_ADDR=" + addr_});
  }

  Json GetJson(const std::string& kind, const std::string& name) {
    auto r = Mt({"get", kind, name, "-o", "json"});
    if (r.exit_code != 0) return Json();
    return Json::parse(r.out, nullptr, false);
  }

  bool ServiceReady() {
    Json s = GetJson("services", "hello");
    return s.is_object() && s["status"].value("readyReplicas", 0) == 1;
  }

  int AllocationPid() {
    Json a = GetJson("allocations", "hello-0");
    if (!a.is_object() || a["status"].value("phase", "") != "Running") return 0;
    return a["status"].value("pid", 0);
  }

  std::string dir_, addr_, manifest_;
  int server_port_ = 0, app_port_ = 0;
  int workload_pid_ = 0;
};

TEST_F(QuickstartTest, ApplyServeRestartDelete) {
  auto server = StartServer();

  auto applied = Mt({"apply", "-f", manifest_});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_EQ(applied.out, "service/hello created\n");

  ASSERT_TRUE(WaitFor([&] { return ServiceReady(); }, 20s)) << server->Log();
  auto table = Mt({"get", "services"});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_TRUE(std::regex_search(table.out,
                                std::regex("NAME +DRIVER +READY +UP-TO-DATE +STATUS +AGE\n")))
      << table.out;
  EXPECT_TRUE(std::regex_search(table.out, std::regex("hello +exec +1/1 +1 +Running +[0-9]+s\n")))
      << table.out;

  // The workload itself answers over HTTP.
  auto page = HttpGet(app_port_, "/");
  EXPECT_EQ(page.first, 200);
  EXPECT_NE(page.second.find("Directory listing"), std::string::npos);

  workload_pid_ = AllocationPid();
  ASSERT_GT(workload_pid_, 0);
  ASSERT_TRUE(ProcessAlive(workload_pid_));

  // Re-applying the same manifest changes nothing.
  auto again = Mt({"apply", "-f", manifest_});
  EXPECT_EQ(again.out, "service/hello unchanged\n");

  // Restart the server: the service is still stored and its process still runs, untouched.
  server->Signal(SIGTERM);
  ASSERT_TRUE(server->Wait(10s).has_value()) << "server did not stop on SIGTERM";
  EXPECT_TRUE(ProcessAlive(workload_pid_)) << "stopping the server must not stop workloads";
  server = StartServer();
  Json svc = GetJson("services", "hello");
  ASSERT_TRUE(svc.is_object()) << "service lost across restart";
  EXPECT_EQ(svc["spec"]["command"], "/usr/bin/python3");
  ASSERT_TRUE(WaitFor([&] { return ServiceReady(); }, 20s)) << server->Log();
  EXPECT_EQ(AllocationPid(), workload_pid_) << "the workload was restarted, not recovered";
  EXPECT_EQ(HttpGet(app_port_, "/").first, 200);

  // Delete: the process is gone within 5 s.
  auto deleted = Mt({"delete", "service", "hello"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "service/hello deleted\n");
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(workload_pid_); }, 5s))
      << "workload pid " << workload_pid_ << " still running 5 s after delete";
  EXPECT_TRUE(WaitFor([&] { return Mt({"get", "allocations", "hello-0"}).exit_code != 0; }, 5s));
  auto none = Mt({"get", "services"});
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_NE(none.err.find("No services found"), std::string::npos);
}

TEST_F(QuickstartTest, SeparateAgentRunsAndRecoversAfterKill9) {
  auto server = StartServer({});  // no --dev: no in-process agent
  std::vector<std::string> agent_argv = {Runfile("cmd/mentat-agent/mentat-agent"), "--server",
                                         addr_, "--node-name", "worker-1", "--data-dir",
                                         dir_ + "/agent"};
  auto agent = std::make_unique<Process>(agent_argv, dir_ + "/agent.log");

  ASSERT_TRUE(WaitFor([&] {
    auto r = Mt({"get", "nodes"});
    return std::regex_search(r.out, std::regex("worker-1 +Ready +(docker!?,)?exec"));
  }, 15s)) << agent->Log();

  ASSERT_EQ(Mt({"apply", "-f", manifest_}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return ServiceReady(); }, 20s)) << agent->Log() << server->Log();
  EXPECT_EQ(GetJson("allocations", "hello-0")["spec"]["nodeName"], "worker-1");
  workload_pid_ = AllocationPid();
  ASSERT_GT(workload_pid_, 0);

  // kill -9 the agent: the workload keeps running, and a new agent adopts it unchanged.
  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(5s).has_value());
  EXPECT_TRUE(ProcessAlive(workload_pid_));
  agent = std::make_unique<Process>(agent_argv, dir_ + "/agent.log");
  ASSERT_TRUE(WaitFor([&] { return agent->Log().find("recovered default/hello-0") != std::string::npos; }, 15s))
      << agent->Log();
  EXPECT_EQ(AllocationPid(), workload_pid_);
  EXPECT_EQ(HttpGet(app_port_, "/").first, 200);
  // ... and says so: an Adopted event (Normal) naming the driver and the pid.
  Json adopted;
  EXPECT_TRUE(WaitFor([&] {
    auto [code, body] = HttpGet(server_port_, "/v1/events?namespace=default");
    if (code != 200) return false;
    Json list = Json::parse(body, nullptr, false);
    if (!list.is_object()) return false;
    for (const auto& e : list["items"]) {
      if (e["spec"].value("reason", "") == "Adopted" &&
          e["spec"]["involvedObject"].value("name", "") == "hello-0") {
        adopted = e;
        return true;
      }
    }
    return false;
  }, 15s)) << HttpGet(server_port_, "/v1/events?namespace=default").second;
  ASSERT_TRUE(adopted.is_object());
  EXPECT_EQ(adopted["spec"].value("type", ""), "Normal");
  std::string message = adopted["spec"].value("message", "");
  EXPECT_NE(message.find("driver exec"), std::string::npos) << message;
  EXPECT_NE(message.find("pid " + std::to_string(workload_pid_)), std::string::npos) << message;
  EXPECT_EQ(adopted["spec"].value("source", ""), "agent/worker-1");

  // The server restarts under the agent: the agent rides it out (a regression: it used to
  // abort on the stream's closing ERROR event) and the workload is untouched.
  server->Signal(SIGTERM);
  ASSERT_TRUE(server->Wait(10s).has_value());
  server = StartServer({});
  ASSERT_TRUE(WaitFor([&] { return ServiceReady(); }, 20s)) << agent->Log();
  EXPECT_TRUE(agent->Running()) << agent->Log();
  EXPECT_EQ(AllocationPid(), workload_pid_);

  ASSERT_EQ(Mt({"delete", "service", "hello"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(workload_pid_); }, 5s));
}

TEST_F(QuickstartTest, TasksThatExitAtOnceAreNeverLostAsRunning) {
  auto server = StartServer();
  std::string f = dir_ + "/quick.yaml";
  WriteFile(f, "name: quick\ndriver: exec\ncommand: /bin/true\ncount: 20\nrestart: on-failure\n");
  ASSERT_EQ(Mt({"apply", "-f", f}).exit_code, 0);
  // Every one of the 20 runs to completion and is reported so; none is stuck as Running.
  ASSERT_TRUE(WaitFor([&] {
    Json s = GetJson("services", "quick");
    return s.is_object() && s["status"].value("phase", "") == "Complete";
  }, 30s)) << Mt({"get", "allocations", "-o", "wide"}).out;
  auto allocs = Mt({"get", "allocations"});
  EXPECT_EQ(std::count(allocs.out.begin(), allocs.out.end(), '\n'), 21) << allocs.out;
  EXPECT_EQ(allocs.out.find("Running"), std::string::npos) << allocs.out;
}

TEST_F(QuickstartTest, ASecondServerCannotTakeTheSamePort) {
  auto server = StartServer();
  auto second = RunCommand(ServerArgv(server_port_, dir_ + "/other"));
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("cannot listen on 127.0.0.1:" + std::to_string(server_port_)),
            std::string::npos)
      << second.err;
}

TEST_F(QuickstartTest, NamespacesFromTheCommandLine) {
  auto server = StartServer({});
  std::string f = dir_ + "/ns.yaml";
  WriteFile(f, "name: web\ndriver: exec\ncommand: /bin/true\nrestart: never\n");
  ASSERT_EQ(Mt({"-n", "staging", "apply", "-f", f}).exit_code, 0);
  ASSERT_EQ(Mt({"apply", "-f", f}).exit_code, 0);
  EXPECT_EQ(Mt({"get", "services", "-n", "staging", "-o", "name"}).out, "service/web\n");
  auto all = Mt({"get", "services", "-A"});
  EXPECT_TRUE(std::regex_search(all.out, std::regex("NAMESPACE +NAME")) ) << all.out;
  EXPECT_TRUE(std::regex_search(all.out, std::regex("staging +web"))) << all.out;
  EXPECT_TRUE(std::regex_search(all.out, std::regex("default +web"))) << all.out;
  // A body naming one namespace and a URL naming another is refused, in either form.
  WriteFile(f, "name: web\nnamespace: team-b\ndriver: exec\ncommand: /bin/true\n");
  auto r = RunCommand({"/usr/bin/curl", "-s", "-w", "\n%{http_code}", "-X", "PUT", "--data-binary",
                       "@" + f, addr_ + "/v1/services/web?namespace=team-a"});
  EXPECT_EQ(r.out.substr(r.out.rfind('\n') + 1), "400") << r.out;
}

TEST_F(QuickstartTest, InvalidUtf8IsReportedNotCrashedOn) {
  auto server = StartServer({});
  std::string f = dir_ + "/bad-utf8.yaml";
  WriteFile(f, "name: web\ndriver: exec\ncommand: /bin/true\nargs: [\"\xff\"]\n");
  auto r = Mt({"apply", "-f", f});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(f + ":4:9: invalid UTF-8 byte sequence"), std::string::npos) << r.err;
}

TEST_F(QuickstartTest, InvalidManifestIsRejectedWithFileLineAndNothingApplied) {
  auto server = StartServer();
  std::string bad = dir_ + "/bad.yaml";
  WriteFile(bad,
            "name: good\ndriver: exec\ncommand: /bin/true\n---\n"
            "name: broken\ndriver: exec\ncommand: /bin/true\nresources:\n  memory: 1g\nreplicas: x\n");
  auto r = Mt({"apply", "-f", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(bad + ":10:1: replicas: must be a whole number"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("nothing was applied"), std::string::npos) << r.err;
  // All or nothing: the valid first document was not applied either.
  EXPECT_NE(Mt({"get", "services", "good"}).exit_code, 0);
}

}  // namespace
TEST_F(QuickstartTest, AServerStartedWhileTheLastOneStopsWaitsForItsStore) {
  // A restart by hand or by a supervisor: the new server finds the store still locked by the
  // old one, which is closing it, and waits for it instead of failing.
  auto first = StartServer({"--dev"});
  ASSERT_TRUE(first);
  const int second_port = FreePort();
  Process second({Runfile("cmd/mentat-server/mentat-server"), "--dev", "--node-name", "e2e-node",
                  "--data-dir", dir_ + "/data", "--listen",
                  "127.0.0.1:" + std::to_string(second_port)},
                 dir_ + "/second.log");
  ASSERT_TRUE(WaitFor([&] { return second.Log().find("waiting up to 30 s") != std::string::npos; }, 10s))
      << second.Log();
  EXPECT_TRUE(second.Running()) << "it gave up at once: " << second.Log();
  first->Signal(SIGTERM);
  ASSERT_TRUE(first->Wait(10s).has_value());
  EXPECT_TRUE(WaitFor([&] { return HttpGet(second_port, "/healthz").first == 200; }, 20s))
      << second.Log();
  second.Signal(SIGTERM);
  EXPECT_TRUE(second.Wait(10s).has_value());
}

}  // namespace mentat::e2e
