// The hull driver through the whole stack (real mentat-server, a real mentat-agent process, real
// namespaces, cgroups and seccomp; root, so no-sandbox): a Service whose process is busybox
// httpd in a busybox root, served on 127.0.0.1 (network host), `mt exec` into the container, a
// kill -9 of the agent after which the same container (same PID 1) is adopted again, and
// delete removing it and its hull record. Then seed 000's Titan shape: a hull manifest file on
// the node as the base, the Service's port, env and resources over it, security.profile hull.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "e2e/server_fixture.h"
#include "runtimes/sandbox/sandbox_testing.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class HullE2E : public ServerFixture {
 protected:
  void SetUp() override {
    StartWith("hull-e2e", {});
    root_ = BusyboxRoot();
    fs::create_directories(root_ + "/www");
    WriteFile(root_ + "/www/index.html", "<h1>hello from hull</h1>\n");
    agent_argv_ = {Runfile("cmd/mentat-agent/mentat-agent"), "--server", Addr(), "--node-name", "hull-node",
                   "--data-dir", dir_ + "/agent", "--sandbox-init", Runfile("cmd/sandbox-init/sandbox-init"),
                   // One port for the agent across its restart: the node's recorded address stays
                   // right, so `mt exec` reaches the new agent as soon as it has recovered its tasks
                   // (it listens before it recovers). With port 0 the record would be stale until
                   // the new agent's first heartbeat.
                   "--listen", "127.0.0.1:" + std::to_string(FreePort())};
    StartAgent();
  }
  void TearDown() override {
    ServerFixture::TearDown();
    agent_.reset();
  }
  void StartAgent() { agent_ = std::make_unique<Process>(agent_argv_, dir_ + "/agent.log"); }
  std::string StateDir() const { return dir_ + "/agent/hull/state"; }
  // The allocation's status once it is Running and Ready, else null.
  Json ReadyStatus(const std::string& alloc) {
    Json a = Get("/v1/allocations/" + alloc);
    if (!a.is_object()) return Json();
    Json st = a.value("status", Json::object());
    if (st.value("phase", "") != "Running" || !st.value("ready", false)) return Json();
    return st;
  }
  // The hull containers recorded in the agent's state directory.
  std::vector<std::string> Containers() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(StateDir() + "/containers", ec)) {
      if (fs::exists(e.path() / "state.json")) out.push_back(e.path().filename());
    }
    return out;
  }
  // The manifest the driver generated for the allocation whose task id ends with `suffix`.
  Json GeneratedManifest(const std::string& suffix) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ + "/agent/tasks", ec)) {
      std::string name = e.path().filename();
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          fs::exists(e.path() / "hull-manifest.json")) {
        return Json::parse(ReadFile(e.path() / "hull-manifest.json"), nullptr, false);
      }
    }
    return Json();
  }

  std::string root_;
  std::vector<std::string> agent_argv_;
  std::unique_ptr<Process> agent_;
};

TEST_F(HullE2E, AHullServiceServesSurvivesAnAgentKillAndIsRemovedOnDelete) {
  int port = FreePort();
  Apply("name: web\n"
        "driver: hull\n"
        "rootfs: " + root_ + "\n"
        "command: /bin/busybox\n"
        "args: [\"httpd\", \"-f\", \"-p\", \"127.0.0.1:" + std::to_string(port) + "\", \"-h\", \"/www\"]\n"
        "env:\n"
        "  GREETING: hello\n"
        "resources:\n"
        "  memory_mb: 64\n"
        "  pids: 32\n"
        "port: " + std::to_string(port) + "\n");
  Json status;
  ASSERT_TRUE(WaitFor([&] { return !(status = ReadyStatus("web-0")).is_null(); }, 60s))
      << Get("/v1/allocations/web-0").dump() << agent_->Log();
  auto [code, body] = HttpGet(port, "/index.html");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body, "<h1>hello from hull</h1>\n");
  const int pid = status.value("pid", 0);
  ASSERT_GT(pid, 0);

  // One hull container, recorded with that PID 1: hull's own tools see it.
  auto names = Containers();
  ASSERT_EQ(names.size(), 1u);
  Json state = Json::parse(ReadFile(StateDir() + "/containers/" + names[0] + "/state.json"));
  EXPECT_EQ(state.value("pid", 0), pid) << state.dump();
  EXPECT_EQ(state.value("status", ""), "running");
  Json manifest = GeneratedManifest("web-0");
  ASSERT_TRUE(manifest.is_object());
  EXPECT_EQ(manifest["name"], names[0]);
  EXPECT_EQ(manifest["network"], "host") << "a Service with a port is reachable on it";
  EXPECT_EQ(manifest["limits"]["memory_mb"], 64);
  EXPECT_EQ(manifest["limits"]["pids"], 32);

  // mt exec: inside the container's PID namespace (sandbox-init is PID 1), its root and its
  // environment.
  auto exec = Mt({"exec", "web-0", "--", "/bin/sh", "-c",
                  "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $GREETING; hostname; ls /www"});
  ASSERT_EQ(exec.exit_code, 0) << exec.err;
  EXPECT_NE(exec.out.find("sandbox-init --status-fd 3 --exec-fd 4 --adopt 2 --exec-error-fd "), std::string::npos) << exec.out;
  EXPECT_NE(exec.out.find(" -- /bin/busybox httpd -f"), std::string::npos) << exec.out;
  EXPECT_NE(exec.out.find("hello\n"), std::string::npos) << exec.out;
  EXPECT_NE(exec.out.find(names[0] + "\n"), std::string::npos) << "the hostname is the container's name: " << exec.out;
  EXPECT_NE(exec.out.find("index.html"), std::string::npos) << exec.out;
  auto exit_code = Mt({"exec", "web-0", "--", "/bin/sh", "-c", "exit 5"});
  EXPECT_EQ(exit_code.exit_code, 5) << exit_code.err;

  // kill -9 of the agent: the container lives on (no daemon), and the next agent adopts it.
  agent_->Signal(SIGKILL);
  ASSERT_TRUE(agent_->Wait(5s).has_value());
  ASSERT_TRUE(ProcessAlive(pid));
  EXPECT_EQ(HttpGet(port, "/index.html").first, 200) << "served while no agent runs";
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return agent_->Log().find("without restarting it") != std::string::npos; }, 20s))
      << agent_->Log();
  ASSERT_TRUE(WaitFor([&] {
    Json st = ReadyStatus("web-0");
    return !st.is_null() && st.value("pid", 0) == pid;
  }, 20s)) << Get("/v1/allocations/web-0").dump();
  EXPECT_EQ(Get("/v1/allocations/web-0")["status"].value("restarts", -1), 0);
  // The adopted container still takes exec.
  auto again = Mt({"exec", "web-0", "--", "/bin/cat", "/www/index.html"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "<h1>hello from hull</h1>\n");

  // delete: the container stops and its record goes.
  ASSERT_EQ(Mt({"delete", "services", "web"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, 30s));
  EXPECT_TRUE(WaitFor([&] { return Containers().empty(); }, 30s)) << Containers().size();
  EXPECT_NE(HttpGet(port, "/index.html").first, 200);
}

TEST_F(HullE2E, ATitanShapedServiceRunsFromAManifestOnTheNode) {
  int port = FreePort();
  // The operator's manifest on the node, as /etc/hull/titan.json is in seed 000.
  const std::string path = dir_ + "/titan.json";
  WriteFile(path, Json{{"name", "titan"},
                       {"rootfs", root_},
                       {"argv", {"/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:" + std::to_string(port), "-h", "/www"}},
                       {"env", {"PHX_SERVER=true", "PORT=1"}},
                       {"profile", "default"},
                       {"network", "host"},
                       {"hostname", "titan"},
                       {"cwd", "/www"},
                       {"limits", {{"memory_mb", 1024}, {"cpu", 2.0}, {"pids", 4096}}}}
                      .dump(2));
  Apply("name: titan\n"
        "replicas: 1\n"
        "config:\n"
        "  driver: hull\n"
        "  manifest: " + path + "\n"
        "  port: " + std::to_string(port) + "\n"
        "env:\n"
        "  PORT: \"" + std::to_string(port) + "\"\n"
        "resources:\n"
        "  memory_mb: 128\n"
        "  cpu_percent: 50\n"
        "port: " + std::to_string(port) + "\n"
        "security:\n"
        "  profile: hull\n");
  ASSERT_TRUE(WaitFor([&] { return !ReadyStatus("titan-0").is_null(); }, 60s))
      << Get("/v1/allocations/titan-0").dump() << agent_->Log();
  EXPECT_EQ(HttpGet(port, "/index.html").second, "<h1>hello from hull</h1>\n");
  // The base's fields stay; the Service's env and resources win.
  Json m = GeneratedManifest("titan-0");
  ASSERT_TRUE(m.is_object());
  EXPECT_EQ(m["hostname"], "titan");
  EXPECT_EQ(m["cwd"], "/www");
  EXPECT_EQ(m["limits"]["memory_mb"], 128);
  EXPECT_DOUBLE_EQ(m["limits"]["cpu"].get<double>(), 0.5);
  EXPECT_EQ(m["limits"]["pids"], 4096);
  std::vector<std::string> env = m["env"];
  EXPECT_NE(std::find(env.begin(), env.end(), "PHX_SERVER=true"), env.end()) << m.dump();
  EXPECT_NE(std::find(env.begin(), env.end(), "PORT=" + std::to_string(port)), env.end()) << m.dump();
  EXPECT_EQ(std::find(env.begin(), env.end(), "PORT=1"), env.end()) << m.dump();
  auto exec = Mt({"exec", "titan-0", "--", "/bin/sh", "-c", "hostname; pwd"});
  EXPECT_EQ(exec.out, "titan\n/www\n") << exec.err;

  // Titan's `binary:` names a hull on the node; where there is none, the start says so.
  Apply("name: titan-sudo\n"
        "config:\n"
        "  driver: hull\n"
        "  manifest: " + path + "\n"
        "  binary: /usr/local/bin/no-such-hull-sudo\n"
        "restart: never\n");
  ASSERT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/titan-sudo-0");
    return a.is_object() && a["status"].value("message", "").find("binary: /usr/local/bin/no-such-hull-sudo") !=
                                std::string::npos;
  }, 30s)) << Get("/v1/allocations/titan-sudo-0").dump();
}

}  // namespace
}  // namespace mentat::e2e
