// The hull driver beyond the conformance suite: the manifest it generates from a Service spec
// (fields, a base manifest overridden, errors naming the field), a container started by an
// operator's hull binary (`binary:`, here the real //cmd/hull) and taken over, a missing binary
// named, and a seccomp kill reported by the blocked call's name. Real containers: root
// (no-sandbox).
#include "runtimes/hull/hull_driver.h"
#include "runtimes/logs/log_testing.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "runtimes/hull/leases.h"
#include "runtimes/sandbox/sandbox_testing.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string Tmp() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TaskConfig Script(const std::string& id, const std::string& script) {
  TaskConfig c;
  c.id = id;
  c.command = "/bin/sh";
  c.args = {"-c", script};
  c.task_dir = Tmp() + "/tasks/" + id;
  c.spec = {{"rootfs", BusyboxRoot()}};
  return c;
}

TEST(HullNameForTask, IsAValidHullNameAndKeepsIdsApart) {
  std::string name = HullNameForTask("default.web-0");
  EXPECT_EQ(name.rfind("default-web-0-", 0), 0u) << name;
  EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"),
            std::string::npos);
  EXPECT_NE(HullNameForTask("a.b-c"), HullNameForTask("a-b.c"));
  EXPECT_LE(HullNameForTask(std::string(200, 'x')).size(), 64u);
  EXPECT_TRUE(HullManifest::FromJson({{"name", HullNameForTask(std::string(200, '.'))},
                                      {"rootfs", "/srv/r"}, {"argv", {"/a"}}}));
}

TEST(HullManifestForTask, TheServiceFieldsBecomeTheManifest) {
  TaskConfig c = Script("default.web-0", "true");
  c.command = "sh";  // looked up on the PATH inside the rootfs
  c.env = {{"A", "1"}};
  c.cwd = "/tmp";
  c.spec["resources"] = {{"memory_mb", 64}, {"cpu_percent", 50}, {"pids", 20}};
  c.spec["volumes"] = Json::array({{{"source", "/srv/data"}, {"target", "/data"}, {"read_only", true}}});
  c.spec["hull"] = {{"profile", "node"}, {"hostname", "web"}};
  auto m = HullManifestForTask(c, 0);
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->name, HullNameForTask("default.web-0"));
  EXPECT_EQ(m->rootfs, BusyboxRoot());
  EXPECT_EQ(m->argv, (std::vector<std::string>{"/bin/sh", "-c", "true"}));
  EXPECT_EQ(m->env, (std::vector<std::string>{"A=1"}));
  EXPECT_EQ(m->cwd, "/tmp");
  EXPECT_EQ(m->limits.memory_mb, 64);
  EXPECT_DOUBLE_EQ(m->limits.cpu, 0.5);
  EXPECT_EQ(m->limits.pids, 20);
  ASSERT_EQ(m->mounts.size(), 1u);
  EXPECT_EQ(m->mounts[0], (HullMount{"/srv/data", "/data", true}));
  EXPECT_EQ(m->profile, "node");
  EXPECT_EQ(m->hostname, "web");
  EXPECT_EQ(m->network, "none") << "hull's default without a port";
  c.spec["port"] = 8080;
  EXPECT_EQ(HullManifestForTask(c, 0)->network, "host") << "a Service with a port is reachable";
  // cpu_mhz over the node's MHz per core.
  c.spec["resources"] = {{"cpu_mhz", 3000}};
  EXPECT_DOUBLE_EQ(HullManifestForTask(c, 2000)->limits.cpu, 1.5);
}

TEST(HullManifestForTask, ABaseManifestIsOverriddenByTheService) {
  const std::string path = Tmp() + "/titan.json";
  std::ofstream(path) << R"({"name": "titan", "rootfs": "/var/lib/hull/rootfs/titan",
    "argv": ["/opt/titan/bin/titan", "start"], "env": ["PHX_SERVER=true", "PORT=4500"],
    "profile": "beam", "network": "host", "hostname": "titan", "cwd": "/opt/titan",
    "limits": {"memory_mb": 1024, "cpu": 2.0, "pids": 4096}})";
  TaskConfig c;
  c.id = "default.titan-0";
  c.env = {{"PORT", "4600"}, {"MENTAT_TASK_ID", "default.titan-0"}};
  c.spec = {{"manifest", path}, {"resources", {{"memory_mb", 512}}}, {"port", 4600}};
  auto m = HullManifestForTask(c, 0);
  ASSERT_TRUE(m) << m.error().ToString();
  EXPECT_EQ(m->name, HullNameForTask("default.titan-0"));
  EXPECT_EQ(m->rootfs, "/var/lib/hull/rootfs/titan");
  EXPECT_EQ(m->argv, (std::vector<std::string>{"/opt/titan/bin/titan", "start"}));
  EXPECT_EQ(m->env, (std::vector<std::string>{"PHX_SERVER=true", "PORT=4600", "MENTAT_TASK_ID=default.titan-0"}));
  EXPECT_EQ(m->profile, "beam");
  EXPECT_EQ(m->cwd, "/opt/titan");
  EXPECT_EQ(m->limits.memory_mb, 512);
  EXPECT_DOUBLE_EQ(m->limits.cpu, 2.0);
  EXPECT_EQ(m->limits.pids, 4096);
  // Inline, as the API stores it.
  c.spec["manifest"] = Json::parse(Slurp(path));
  ASSERT_TRUE(HullManifestForTask(c, 0));
}

TEST(HullManifestForTask, ErrorsNameTheField) {
  auto message = [](TaskConfig c) {
    auto m = HullManifestForTask(c, 0);
    return m ? std::string("accepted") : m.error().message();
  };
  TaskConfig c = Script("default.bad-0", "true");
  c.spec["manifest"] = "/no/such/titan.json";
  EXPECT_NE(message(c).find("manifest: /no/such/titan.json is not a file"), std::string::npos) << message(c);
  const std::string bad = Tmp() + "/bad.json";
  std::ofstream(bad) << R"({"name": "x", "rootfs": "/r", "argv": ["/a"], "limits": {"pids": 0}})";
  c.spec["manifest"] = bad;
  EXPECT_NE(message(c).find("manifest.limits.pids"), std::string::npos) << message(c);
  c = Script("default.bad-0", "true");
  c.command = "no-such-program";
  EXPECT_NE(message(c).find("command: no-such-program is not on the PATH"), std::string::npos) << message(c);
  c = Script("default.bad-0", "true");
  c.spec.erase("rootfs");
  EXPECT_NE(message(c).find("rootfs: required"), std::string::npos) << message(c);
  c = Script("default.bad-0", "true");
  c.spec["hull"] = {{"profile", "cobol"}};
  EXPECT_NE(message(c).find("profile"), std::string::npos) << message(c);
  c = Script("default.bad-0", "true");
  c.spec["resources"] = {{"cpu_mhz", 100}};
  EXPECT_NE(message(c).find("resources.cpu_mhz"), std::string::npos) << message(c);
  // A task may not put the agent's gateway address and FORWARD rule on a host link: only
  // hull's own bridges.
  const std::string uplink = Tmp() + "/uplink.json";
  std::ofstream(uplink) << R"({"name": "x", "rootfs": "/r", "argv": ["/a"], "network": "bridge",
                               "bridge": {"name": "eth0"}})";
  c = Script("default.bad-0", "true");
  c.spec["manifest"] = uplink;
  EXPECT_NE(message(c).find("bridge.name: eth0 is not a hull bridge"), std::string::npos) << message(c);
  std::ofstream(uplink) << R"({"name": "x", "rootfs": "/r", "argv": ["/a"], "network": "bridge",
                               "bridge": {"name": "hullv0a580002"}})";
  EXPECT_NE(message(c).find("bridge.name: hullv0a580002 is not a hull bridge"), std::string::npos) << message(c);
  std::ofstream(uplink) << R"({"name": "x", "rootfs": "/r", "argv": ["/a"], "network": "bridge",
                               "bridge": {"name": "hull1"}})";
  EXPECT_EQ(message(c), "accepted");
}

class HullDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HullDriverOptions o;
    o.state_dir = Tmp() + "/hull-state";
    auto d = HullDriver::Create(std::move(o));
    ASSERT_TRUE(d) << d.error().ToString();
    driver_ = std::move(*d);
  }
  void TearDown() override {
    for (const auto& id : ids_) driver_->Destroy(id, true);
  }
  Result<TaskHandle> Start(const TaskConfig& c) {
    ids_.push_back(c.id);
    return driver_->Start(c);
  }
  std::unique_ptr<HullDriver> driver_;
  std::vector<std::string> ids_;
};

TEST_F(HullDriverTest, AHullBinaryRunsTheContainerAndTheDriverTakesOver) {
  const std::string hull = std::string(std::getenv("TEST_SRCDIR")) + "/" + std::getenv("TEST_WORKSPACE") + "/cmd/hull/hull";
  TaskConfig c = Script("default.bin-0", "echo from-binary; read x < /dev/null; trap 'exit 6' TERM; "
                                         "echo ready; while :; do sleep 0.05; done");
  c.spec["binary"] = hull;
  auto h = Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->state.value("binary", ""), hull);
  const std::string name = h->state["name"];
  ASSERT_TRUE(fs::exists(driver_->state_dir().StatePath(name)));
  auto ready = [&] { return Slurp(c.task_dir + "/stdout.log").find("ready") != std::string::npos; };
  for (int i = 0; i < 500 && !ready(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(ready()) << Slurp(c.task_dir + "/stdout.log") << Slurp(c.task_dir + "/stderr.log");
  EXPECT_EQ(Slurp(c.task_dir + "/stdout.log"), "from-binary\nready\n");
  // Not the driver's child: the exit code still comes exact, from sandbox-init's report.
  ASSERT_TRUE(driver_->Stop(c.id, 5s, SIGTERM));
  auto exit = driver_->Wait(c.id, 5s);
  ASSERT_TRUE(exit && *exit);
  EXPECT_EQ((*exit)->exit_code, 6) << (*exit)->message;
  ASSERT_TRUE(driver_->Destroy(c.id, false));
  EXPECT_FALSE(fs::exists(driver_->state_dir().ContainerDir(name)));
}

TEST_F(HullDriverTest, TheContainersOutputGoesThroughTheLogRelayInOrderAcrossStreams) {
  // Paced, so that the relay has read each line before the next (the order the relay reads is
  // the order written; log_relay.h).
  TaskConfig c = Script("default.relay-0", "i=0; while [ $i -lt 20 ]; do echo out$i; sleep 0.05; "
                                           "echo err$i >&2; sleep 0.05; i=$((i+1)); done; exit 2");
  auto h = Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  ASSERT_TRUE(HasLogRelay(h->state)) << h->state.dump();
  auto logs = driver_->Logs(c.id);
  ASSERT_TRUE(logs);
  EXPECT_TRUE(logs->self_indexed);
  auto exit = driver_->Wait(c.id, 10s);
  ASSERT_TRUE(exit && *exit);
  EXPECT_EQ((*exit)->exit_code, 2) << (*exit)->message;
  // Complete once the exit is known: the exit waits for the relay's last write.
  EXPECT_EQ(MergedLines(c.task_dir), AlternatingLines(20));
}

TEST_F(HullDriverTest, AMissingBinaryIsNamed) {
  TaskConfig c = Script("default.nobin-0", "true");
  c.spec["binary"] = "/usr/local/bin/no-such-hull-sudo";
  auto h = Start(c);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(h.error().message().find("binary: /usr/local/bin/no-such-hull-sudo is not an executable"),
            std::string::npos)
      << h.error().message();
}

TEST_F(HullDriverTest, ASeccompKillIsReportedByTheBlockedCall) {
  // setns is in no profile but java's: the workload dies of SIGSYS, and the message says why.
  // It enters its own mount namespace: /proc/self/ns/mnt always opens, so setns is reached every
  // time. (Not PID 1's: PID 1 is hull's undumpable code until it execs sandbox-init, and opening
  // /proc/1/ns/mnt in that moment fails with EACCES before any setns.)
  TaskConfig c = Script("default.sys-0", "");
  c.command = "/bin/busybox";
  c.args = {"nsenter", "-m/proc/self/ns/mnt", "/bin/true"};
  auto h = Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto exit = driver_->Wait(c.id, 10s);
  ASSERT_TRUE(exit && *exit);
  EXPECT_EQ((*exit)->signal, SIGSYS) << (*exit)->message;
  EXPECT_NE((*exit)->message.find("seccomp profile default blocked setns"), std::string::npos) << (*exit)->message;
}

TEST_F(HullDriverTest, AManifestErrorFailsTheStartNamingTheField) {
  TaskConfig c = Script("default.cwd-0", "true");
  c.cwd = "/no/such/dir";
  auto h = Start(c);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kInvalidArgument);
  EXPECT_NE(h.error().message().find("cwd"), std::string::npos) << h.error().message();
}

// A bridge container's address and host veth go back when it exits, not only at delete. In a
// network namespace of the test's own: unshared by this thread before the driver (and its
// threads) exist, and left again afterwards; its leases under the test's directory.
class HullDriverBridgeTest : public HullDriverTest {
 protected:
  void SetUp() override {
    host_netns_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(host_netns_, 0);
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0);
    ::setenv("HULL_LEASE_ROOT", (Tmp() + "/run").c_str(), 1);
    HullDriverTest::SetUp();
  }
  void TearDown() override {
    HullDriverTest::TearDown();
    driver_.reset();
    ::unsetenv("HULL_LEASE_ROOT");
    if (host_netns_ >= 0) {
      EXPECT_EQ(::setns(host_netns_, CLONE_NEWNET), 0);
      ::close(host_netns_);
    }
  }
  int host_netns_ = -1;
};

TEST_F(HullDriverBridgeTest, AnExitReleasesTheAddressAndTheVeth) {
  TaskConfig c = Script("default.br-0", "ip -o addr show eth0; exit 3");
  c.spec["hull"] = {{"network", "bridge"}};
  auto h = Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto lease_dir = hull::LeaseDirFor("hull0");
  ASSERT_TRUE(lease_dir);
  auto exit = driver_->Wait(c.id, 10s);
  ASSERT_TRUE(exit && *exit);
  EXPECT_EQ((*exit)->exit_code, 3) << (*exit)->message;
  EXPECT_NE(Slurp(c.task_dir + "/stdout.log").find("10.88.0.2/24"), std::string::npos)
      << Slurp(c.task_dir + "/stdout.log") << Slurp(c.task_dir + "/stderr.log");
  // Released with the exit: no lease, no host veth, while the task (and its record) remain.
  EXPECT_FALSE(fs::exists(*lease_dir + "/leases/10.88.0.2"));
  EXPECT_EQ(::if_nametoindex("hullv0a580002"), 0u);
  EXPECT_TRUE(fs::exists(driver_->state_dir().StatePath(h->state["name"])));
}

}  // namespace
}  // namespace mentat
