// The Docker driver through the whole stack, against the real dockerd (scripts/dockerd.sh starts
// it and imports local/busybox:1): mentat-server, a mentat-agent publishing ports on 127.0.0.1,
// and mt. A busybox httpd service is applied, served over HTTP, changed (a rolling replacement)
// and deleted (no container left); kill -9 of the agent re-adopts the running container (same
// id, same StartedAt) and its later death is still seen; a container started by hand with
// `docker run` is adopted without a restart, and a spec that does not match it is refused; a
// docker-hardened container is checked with docker inspect; and a dockerd of the test's own is
// stopped and started again under a running service.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>

#include "e2e/server_fixture.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < s.size()) {
    size_t nl = s.find('\n', at);
    if (nl == std::string::npos) nl = s.size();
    if (nl > at) out.push_back(s.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

class DockerE2E : public ServerFixture {
 protected:
  void SetUp() override {
    auto up = RunCommand({Runfile("scripts/dockerd.sh")});
    ASSERT_EQ(up.exit_code, 0) << up.err << up.out;
    node_ = "docker-e2e-" + std::to_string(getpid());
    StartWith("docker-e2e", {});
    StartAgent();
  }
  void TearDown() override {
    ServerFixture::TearDown();
    // The allocations are gone once the agent said so; their containers a moment later.
    WaitFor([&] { return NodeContainers().empty(); }, 30s);
    agent_.reset();
    for (const auto& id : Split(NodeContainers())) Docker({"rm", "-f", id});
    for (const auto& c : hand_made_) Docker({"rm", "-f", c});
  }
  void StartAgent() {
    agent_ = std::make_unique<Process>(
        std::vector<std::string>{Runfile("cmd/mentat-agent/mentat-agent"), "--server", Addr(), "--node-name", node_,
                                 "--data-dir", dir_ + "/agent", "--docker-publish-ip", "127.0.0.1"},
        dir_ + "/agent.log");
  }
  CommandResult Docker(std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/env", "PATH=/usr/local/bin:/usr/bin:/bin", "docker"});
    return RunCommand(args);
  }
  std::string Inspect(const std::string& container, const std::string& format) {
    return Trim(Docker({"inspect", "-f", format, container}).out);
  }
  // The containers labelled for this test's node.
  std::string NodeContainers() {
    return Trim(Docker({"ps", "-aq", "--filter", "label=mentat.node=" + node_}).out);
  }
  std::string Diagnostics() {
    return Mt({"describe", "allocations"}).out + "\n--- agent.log\n" + ReadFile(dir_ + "/agent.log");
  }
  // A busybox httpd serving `text` on host port `port`.
  std::string Web(const std::string& name, int port, const std::string& text) {
    return "name: " + name + "\n"
           "driver: docker\n"
           "image: local/busybox:1\n"
           "command: /bin/sh\n"
           "args: [\"-c\", \"mkdir -p /tmp/www && echo " + text + " > /tmp/www/index.html && echo serving " + text + " && exec httpd -f -p 80 -h /tmp/www\"]\n"
           "env:\n"
           "  - - GREETING\n"
           "    - " + text + "\n"
           "ports: [\"" + std::to_string(port) + ":80\"]\n"
           "port: " + std::to_string(port) + "\n";
  }
  bool Serves(int port, const std::string& text) {
    auto [code, body] = HttpGet(port, "/index.html");
    return code == 200 && body == text + "\n";
  }

  std::string node_;
  std::unique_ptr<Process> agent_;
  std::vector<std::string> hand_made_;
};

TEST_F(DockerE2E, AppliedServedRolledAndDeleted) {
  int port = FreePort();
  Apply(Web("web", port, "hello-v1"));
  ASSERT_TRUE(WaitFor([&] { return Serves(port, "hello-v1"); }, 60s)) << Diagnostics();
  Json alloc = Get("/v1/allocations/web-0");
  EXPECT_EQ(alloc["status"].value("phase", ""), "Running") << alloc.dump();
  // The container carries Mentat's labels, Docker's restart policy is off, the env is there.
  std::string name = "mentat-default.web-0";
  std::string v1 = Inspect(name, "{{.Id}}");
  ASSERT_FALSE(v1.empty()) << Docker({"ps", "-a"}).out;
  EXPECT_EQ(Inspect(name, "{{index .Config.Labels \"mentat.service\"}}"), "web");
  EXPECT_EQ(Inspect(name, "{{index .Config.Labels \"mentat.allocation\"}}"), "web-0");
  EXPECT_EQ(Inspect(name, "{{index .Config.Labels \"mentat.node\"}}"), node_);
  EXPECT_EQ(Inspect(name, "{{index .Config.Labels \"mentat.spec-hash\"}}").size(), 16u);
  EXPECT_EQ(Inspect(name, "{{.HostConfig.RestartPolicy.Name}}"), "no");
  EXPECT_NE(Inspect(name, "{{.Config.Env}}").find("GREETING=hello-v1"), std::string::npos);
  EXPECT_EQ(Inspect(name, "{{(index (index .HostConfig.PortBindings \"80/tcp\") 0).HostIp}}"), "127.0.0.1");
  // The agent's log endpoint follows what the container writes.
  EXPECT_TRUE(WaitFor([&] { return Mt({"logs", "web-0"}).out == "serving hello-v1\n"; }, 10s))
      << Mt({"logs", "web-0"}).out << Mt({"logs", "web-0"}).err;

  // A spec change rolls out: a new container serves the new text, the old one is gone.
  Apply(Web("web", port, "hello-v2"));
  ASSERT_TRUE(WaitFor([&] { return Serves(port, "hello-v2"); }, 90s)) << Diagnostics();
  EXPECT_TRUE(WaitFor([&] {
    std::string ids = NodeContainers();
    return !ids.empty() && ids.find('\n') == std::string::npos && v1.rfind(ids, 0) != 0;
  }, 30s)) << NodeContainers();

  // Delete leaves no container.
  ASSERT_EQ(Mt({"delete", "service", "web"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return NodeContainers().empty(); }, 30s)) << NodeContainers();
  EXPECT_FALSE(Serves(port, "hello-v2"));
}

TEST_F(DockerE2E, Kill9OfTheAgentReadoptsTheRunningContainer) {
  int port = FreePort();
  Apply(Web("mars", port, "still-here"));
  ASSERT_TRUE(WaitFor([&] { return Serves(port, "still-here"); }, 60s)) << Diagnostics();
  std::string name = "mentat-default.mars-0";
  std::string id = Inspect(name, "{{.Id}}");
  std::string started = Inspect(name, "{{.State.StartedAt}}");
  ASSERT_FALSE(id.empty());

  agent_->Signal(SIGKILL);
  ASSERT_TRUE(agent_->Wait(10s));
  EXPECT_TRUE(Serves(port, "still-here")) << "the container outlives the agent";
  // A stray labelled container of this node, that no allocation owns: removed at agent start.
  auto stray = Docker({"run", "-d", "--name", "mentat-stray-" + std::to_string(getpid()), "--label",
                       "mentat.node=" + node_, "local/busybox:1", "sleep", "300"});
  ASSERT_EQ(stray.exit_code, 0) << stray.err;
  hand_made_.push_back("mentat-stray-" + std::to_string(getpid()));
  StartAgent();
  ASSERT_TRUE(WaitFor([&] {
    return Mt({"get", "events", "-o", "json"}).out.find("Adopted") != std::string::npos;
  }, 30s)) << Diagnostics();
  EXPECT_EQ(Inspect(name, "{{.Id}}"), id) << "the same container";
  EXPECT_EQ(Inspect(name, "{{.State.StartedAt}}"), started) << "not restarted";
  EXPECT_TRUE(WaitFor([&] { return Docker({"inspect", "mentat-stray-" + std::to_string(getpid())}).exit_code != 0; }, 30s))
      << "the orphan is removed";
  EXPECT_TRUE(Serves(port, "still-here"));

  // Its death is still seen: the agent restarts it (restart: always) in a new container.
  ASSERT_EQ(Docker({"kill", name}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] {
    std::string now = Inspect(name, "{{.Id}}");
    return !now.empty() && now != id && Serves(port, "still-here");
  }, 60s)) << Diagnostics();
  EXPECT_TRUE(WaitFor([&] { return Get("/v1/allocations/mars-0")["status"].value("restarts", 0) >= 1; }, 10s))
      << Get("/v1/allocations/mars-0").dump();
}

TEST_F(DockerE2E, AdoptsAContainerStartedByHandAndRefusesAMismatch) {
  int port = FreePort();
  std::string hand = "hand-made-" + std::to_string(getpid());
  hand_made_.push_back(hand);
  auto run = Docker({"run", "-d", "--name", hand, "-p", "127.0.0.1:" + std::to_string(port) + ":80",
                     "local/busybox:1", "sh", "-c", "mkdir -p /tmp/w && echo by-hand > /tmp/w/index.html && exec httpd -f -p 80 -h /tmp/w"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(WaitFor([&] { return Serves(port, "by-hand"); }, 30s));
  std::string id = Inspect(hand, "{{.Id}}");
  std::string started = Inspect(hand, "{{.State.StartedAt}}");

  // A spec that does not match the container (another port) is refused, with the reason.
  Apply("name: wrong\ndriver: docker\nimage: local/busybox:1\nports: [\"" + std::to_string(port + 1) +
        ":80\"]\nadopt:\n  container: " + hand + "\nrestart: never\n");
  ASSERT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/wrong-0");
    return a.is_object() && a["status"].value("message", "").find("publishes ports") != std::string::npos;
  }, 30s)) << Diagnostics();
  Json wrong = Get("/v1/allocations/wrong-0");
  EXPECT_NE(wrong["status"].value("message", "").find(std::to_string(port) + ":80/tcp"), std::string::npos)
      << wrong.dump();
  ASSERT_EQ(Mt({"delete", "service", "wrong"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return !Get("/v1/allocations/wrong-0").is_object(); }, 30s));
  EXPECT_EQ(Inspect(hand, "{{.State.Running}}"), "true") << "a refused adoption leaves it alone";

  // The matching spec adopts it: Running, the same container, never restarted.
  Apply("name: adopted\ndriver: docker\nimage: local/busybox:1\nports: [\"" + std::to_string(port) +
        ":80\"]\nport: " + std::to_string(port) + "\nadopt:\n  container: " + hand + "\n");
  ASSERT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/adopted-0");
    return a.is_object() && a["status"].value("phase", "") == "Running" && a["status"].value("ready", false);
  }, 30s)) << Diagnostics();
  EXPECT_EQ(Inspect(hand, "{{.Id}}"), id);
  EXPECT_EQ(Inspect(hand, "{{.State.StartedAt}}"), started);
  EXPECT_TRUE(Serves(port, "by-hand"));
}

TEST_F(DockerE2E, DockerHardenedReachesTheContainerAndCraftedManifestsAreRefused) {
  int port = FreePort();
  // Non-root, read-only root: httpd serves /etc from an unprivileged port.
  Apply("name: hard\ndriver: docker\nimage: local/busybox:1\ncommand: /bin/httpd\n"
        "args: [\"-f\", \"-p\", \"8080\", \"-h\", \"/etc\"]\nports: [\"" + std::to_string(port) +
        ":8080\"]\nport: " + std::to_string(port) + "\nsecurity:\n  profile: docker-hardened\n");
  ASSERT_TRUE(WaitFor([&] { return HttpGet(port, "/group").first == 200; }, 60s)) << Diagnostics();
  std::string name = "mentat-default.hard-0";
  EXPECT_EQ(Inspect(name, "{{.HostConfig.ReadonlyRootfs}}"), "true");
  EXPECT_EQ(Inspect(name, "{{.HostConfig.CapDrop}}"), "[ALL]");
  EXPECT_EQ(Inspect(name, "{{.Config.User}}"), "65534:65534");
  EXPECT_EQ(Inspect(name, "{{.HostConfig.Privileged}}"), "false");
  std::string opts = Inspect(name, "{{json .HostConfig.SecurityOpt}}");
  EXPECT_NE(opts.find("no-new-privileges:true"), std::string::npos) << opts;
  EXPECT_NE(opts.find("seccomp="), std::string::npos) << opts;
  EXPECT_NE(opts.find("SCMP_ACT_ERRNO"), std::string::npos) << "Mentat's strict profile, as JSON: " << opts;
  // Inside: not root, and the strict seccomp profile refuses what a service never needs.
  auto id = Docker({"exec", name, "id", "-u"});
  EXPECT_EQ(Trim(id.out), "65534");
  auto unshare = Docker({"exec", name, "unshare", "-U", "true"});
  EXPECT_NE(unshare.exit_code, 0) << unshare.out;

  // Crafted manifests break a rule each: refused at admission (403) naming the field.
  struct Crafted {
    std::string extra, field;
  };
  for (const Crafted& c : std::vector<Crafted>{
           {"docker:\n  privileged: true\n", "docker.privileged"},
           {"user: root\n", "user"},
           {"docker:\n  read_only_rootfs: false\n", "docker.read_only_rootfs"},
           {"volumes:\n  - source: /var/run/docker.sock\n    target: /var/run/docker.sock\n", "volumes[0]"},
           {"volumes:\n  - source: /etc\n    target: /host-etc\n", "volumes[0]"},
       }) {
    WriteFile(dir_ + "/crafted.yaml", "name: crafted\ndriver: docker\nimage: local/busybox:1\n"
                                      "security:\n  profile: docker-hardened\n" + c.extra);
    auto r = Mt({"apply", "-f", dir_ + "/crafted.yaml"});
    EXPECT_NE(r.exit_code, 0) << c.extra;
    EXPECT_NE(r.err.find(c.field), std::string::npos) << c.extra << " -> " << r.err;
  }
}

// A dockerd of the test's own (its socket, data and exec roots; no bridge, so no iptables) is
// stopped and started again under a running service: the node's fingerprint and the
// allocation's status say dockerd is not reachable, and both recover when it is back.
class PrivateDockerdE2E : public DockerE2E {
 protected:
  void SetUp() override {
    auto up = RunCommand({Runfile("scripts/dockerd.sh"), "--no-image"});
    ASSERT_EQ(up.exit_code, 0) << up.err;
    node_ = "docker-own-" + std::to_string(getpid());
    StartWith("docker-own", {});
    // Short paths: containerd's socket lives under the exec root, and a Unix socket path has
    // 108 bytes at most.
    exec_root_ = "/tmp/mtdx-" + std::to_string(getpid());
    socket_ = exec_root_ + ".sock";
    StartDockerd();
    auto image = RunCommand({"/usr/bin/env", "DOCKER_SOCKET=" + socket_, Runfile("scripts/dockerd.sh")});
    ASSERT_EQ(image.exit_code, 0) << image.err << image.out;
    agent_ = std::make_unique<Process>(
        std::vector<std::string>{Runfile("cmd/mentat-agent/mentat-agent"), "--server", Addr(), "--node-name", node_,
                                 "--data-dir", dir_ + "/agent", "--docker-socket", socket_,
                                 "--heartbeat-interval", "1s"},
        dir_ + "/agent.log");
  }
  void TearDown() override {
    if (!dockerd_ || !dockerd_->Running()) StartDockerd();
    ServerFixture::TearDown();
    agent_.reset();
    StopDockerd();
    // dockerd bind-mounts its data root onto itself; one killed mid-way leaves it mounted.
    for (const std::string& d : {exec_root_ + "-data", exec_root_}) {
      umount2(d.c_str(), MNT_DETACH);
      std::filesystem::remove_all(d);
    }
    std::filesystem::remove(socket_);
  }
  void StartDockerd() {
    dockerd_ = std::make_unique<Process>(
        // Its own network namespace: dockerd's network setup (here: no bridge, which makes it
        // delete docker0) must not touch the host's, where the shared dockerd has its bridge.
        std::vector<std::string>{"/usr/bin/unshare", "--net", "/usr/sbin/dockerd", "--host", "unix://" + socket_, "--data-root", exec_root_ + "-data",
                                 "--exec-root", exec_root_, "--pidfile", dir_ + "/docker.pid", "--bridge", "none",
                                 "--iptables=false", "--ip-masq=false"},
        dir_ + "/dockerd.log");
    ASSERT_TRUE(WaitFor([&] { return Curl("/_ping") == "OK"; }, 60s)) << ReadFile(dir_ + "/dockerd.log").substr(0, 3000);
  }
  void StopDockerd() {
    if (!dockerd_) return;
    dockerd_->Signal(SIGTERM);
    dockerd_->Wait(60s);
    dockerd_.reset();
  }
  std::string Curl(const std::string& path) {
    return RunCommand({"/usr/bin/curl", "-s", "--max-time", "2", "--unix-socket", socket_, "http://d" + path}).out;
  }
  Json DockerFingerprint() {
    Json n = Get("/v1/nodes/" + node_);
    return n.is_object() ? n["status"]["drivers"].value("docker", Json()) : Json();
  }
  std::string exec_root_, socket_;
  std::unique_ptr<Process> dockerd_;
};

TEST_F(PrivateDockerdE2E, DockerdStoppedAndStartedAgain) {
  Apply("name: own\ndriver: docker\nimage: local/busybox:1\ncommand: /bin/sleep\nargs: [\"3600\"]\n"
        "docker:\n  network_mode: none\n");
  auto running = [&] {
    Json a = Get("/v1/allocations/own-0");
    return a.is_object() && a["status"].value("phase", "") == "Running";
  };
  ASSERT_TRUE(WaitFor(running, 60s)) << Diagnostics();
  ASSERT_TRUE(WaitFor([&] { return DockerFingerprint().value("healthy", false); }, 30s)) << DockerFingerprint();

  StopDockerd();
  // The heartbeat carries the fingerprint; the allocation says why it cannot run.
  EXPECT_TRUE(WaitFor([&] {
    Json fp = DockerFingerprint();
    return fp.is_object() && !fp.value("healthy", true) &&
           fp.value("detail", "").find("dockerd is not reachable at " + socket_) != std::string::npos;
  }, 30s)) << DockerFingerprint();
  EXPECT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/own-0");
    return a.is_object() && a["status"].value("message", "").find("dockerd is not reachable") != std::string::npos;
  }, 60s)) << Get("/v1/allocations/own-0").dump();

  StartDockerd();
  EXPECT_TRUE(WaitFor([&] { return DockerFingerprint().value("healthy", false); }, 30s)) << DockerFingerprint();
  EXPECT_TRUE(WaitFor(running, 90s)) << Diagnostics();
}

}  // namespace
}  // namespace mentat::e2e
