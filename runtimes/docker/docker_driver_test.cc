// The Docker driver's own behaviour beyond the conformance suite, against the real dockerd:
// the rules checked again at Start (defence in depth), the hardened settings mapped onto
// HostConfig, the pids limit counted (forks from an exec, the container staying up), orphan
// cleanup by label, and a dockerd that does not answer.
#include "runtimes/docker/docker_driver.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "runtimes/docker/docker_testing.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

class DockerDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto up = EnsureDockerd();
    ASSERT_TRUE(up) << up.error().message();
    DockerDriverOptions o;
    o.node_name = "ddt-" + std::to_string(getpid());
    auto d = DockerDriver::Create(o);
    ASSERT_TRUE(d);
    driver_ = std::move(*d);
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = std::string(tmp ? tmp : "/tmp") + "/ddt";
  }
  void TearDown() override {
    for (const auto& id : ids_) driver_->Destroy(id, true);
  }
  TaskConfig Config(const std::string& id, std::vector<std::string> args, Json spec = Json::object()) {
    ids_.push_back(id);
    TaskConfig c;
    c.id = "default." + id;
    ids_.back() = c.id;
    c.command = "/bin/sh";
    c.args = std::move(args);
    c.task_dir = dir_ + "/" + id;
    spec["image"] = kBusyboxImage;
    c.spec = spec;
    return c;
  }
  std::unique_ptr<DockerDriver> driver_;
  std::string dir_;
  std::vector<std::string> ids_;
};

TEST_F(DockerDriverTest, TheRulesAreCheckedAgainAtStart) {
  // Admission would refuse this; a spec that reached the agent another way is refused too.
  auto c = Config("priv", {"-c", "sleep 1"},
                  {{"security", {{"profile", "docker-hardened"}}}, {"docker", {{"privileged", true}}}});
  auto h = driver_->Start(c);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kForbidden) << h.error().ToString();
  EXPECT_NE(h.error().ToString().find("docker.privileged"), std::string::npos) << h.error().ToString();
  EXPECT_EQ(RunShell("docker ps -aq --filter name=^/mentat-default-priv$"), "") << "nothing was created";
}

TEST_F(DockerDriverTest, HardenedSettingsBecomeTheHostConfig) {
  DockerSecurity sec;
  sec.read_only_rootfs = true;
  sec.no_new_privileges = true;
  sec.cap_drop = {"ALL"};
  sec.cap_add = {"NET_BIND_SERVICE"};
  sec.seccomp = "strict";
  Json hc = DockerHostSecurity(sec, /*apparmor=*/false);
  EXPECT_EQ(hc["ReadonlyRootfs"], true);
  EXPECT_EQ(hc["CapDrop"], Json::array({"ALL"}));
  EXPECT_EQ(hc["CapAdd"], Json::array({"NET_BIND_SERVICE"}));
  ASSERT_EQ(hc["SecurityOpt"].size(), 2u) << hc.dump();
  EXPECT_EQ(hc["SecurityOpt"][0], "no-new-privileges:true");
  EXPECT_EQ(hc["SecurityOpt"][1], std::string("seccomp=") + StrictSeccompJson());
  // AppArmor is named only where the host has it.
  Json with = DockerHostSecurity(sec, /*apparmor=*/true);
  EXPECT_EQ(with["SecurityOpt"].back(), "apparmor=docker-default");
  sec.seccomp = "unconfined";
  EXPECT_EQ(DockerHostSecurity(sec, false)["SecurityOpt"][1], "seccomp=unconfined");
  EXPECT_TRUE(Json::parse(StrictSeccompJson(), nullptr, false).is_object()) << "the shipped profile is JSON";
}

TEST_F(DockerDriverTest, ForksOverThePidsLimitAreCounted) {
  // The fork bomb runs in an exec: the container's main process stays up, and so its cgroup.
  auto c = Config("pids", {"-c", "sleep 300"}, {{"resources", {{"pids", 16}}}});
  ASSERT_TRUE(driver_->Start(c));
  auto s = driver_->Exec(c.id, {.command = {"sh", "-c", "i=0; while [ $i -lt 64 ]; do (sleep 300) & i=$((i+1)); done; wait"}}, {});
  ASSERT_TRUE(s) << s.error().ToString();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  uint64_t hits = 0;
  while (std::chrono::steady_clock::now() < deadline && hits == 0) {
    auto st = driver_->Stats(c.id);
    if (st) hits = st->pids_limit_hits;
    if (!hits) std::this_thread::sleep_for(50ms);
  }
  EXPECT_GT(hits, 0u) << "no fork was refused";
  auto st = driver_->Stats(c.id);
  ASSERT_TRUE(st);
  EXPECT_LE(st->pids, 16u);
}

TEST_F(DockerDriverTest, OrphansOfThisNodeAreRemovedOthersKept) {
  auto c = Config("owned", {"-c", "sleep 300"});
  ASSERT_TRUE(driver_->Start(c));
  std::string node = "ddt-" + std::to_string(getpid());
  std::string orphan = "ddt-orphan-" + std::to_string(getpid());
  std::string other = "ddt-other-" + std::to_string(getpid());
  RunShell("docker run -d --name " + orphan + " --label mentat.node=" + node + " " + kBusyboxImage + " sleep 300");
  RunShell("docker run -d --name " + other + " --label mentat.node=elsewhere " + kBusyboxImage + " sleep 300");
  auto removed = driver_->CleanupOrphans();
  ASSERT_TRUE(removed) << removed.error().ToString();
  EXPECT_EQ(*removed, std::vector<std::string>{orphan});
  EXPECT_EQ(RunShell("docker ps -aq --filter name=^/" + orphan + "$"), "");
  EXPECT_NE(RunShell("docker ps -q --filter name=^/" + other + "$"), "") << "another node's container stays";
  EXPECT_NE(RunShell("docker ps -q --filter name=^/mentat-default-owned$"), "") << "an owned one stays";
  RunShell("docker rm -f " + other);
}

TEST_F(DockerDriverTest, LogsResumeAfterARestartWithoutDuplicatesAndDeathsWhileDownAreReported) {
  auto c = Config("resume", {"-c", "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); sleep 0.01; done; "
                                   "trap 'exit 3' TERM; while :; do sleep 0.05; done"});
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto slurp = [&] {
    std::ifstream f(c.task_dir + "/stdout.log");
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  auto until = std::chrono::steady_clock::now() + 20s;
  while (slurp().find("line-100\n") == std::string::npos && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  // The agent goes away mid-stream and comes back: the same container, its logs resumed.
  auto persisted = TaskHandle::FromJson(Json::parse(h->ToJson().dump()));
  ASSERT_TRUE(persisted);
  driver_.reset();
  std::this_thread::sleep_for(300ms);  // lines written while no driver runs
  DockerDriverOptions o;
  o.node_name = "ddt-" + std::to_string(getpid());
  driver_ = std::move(*DockerDriver::Create(o));
  ASSERT_TRUE(driver_->Recover(*persisted));
  until = std::chrono::steady_clock::now() + 30s;
  while (slurp().find("line-999\n") == std::string::npos && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  std::string expected;
  for (int i = 0; i < 1000; ++i) expected += "line-" + std::to_string(i) + "\n";
  EXPECT_EQ(slurp(), expected) << "every line once, in order";

  // It dies while no driver runs: Recover says so, with its exit code.
  driver_.reset();
  ASSERT_EQ(RunShell("docker stop -t 5 mentat-default-resume >/dev/null; docker inspect -f '{{.State.ExitCode}}' "
                     "mentat-default-resume"), "3\n");
  driver_ = std::move(*DockerDriver::Create(o));
  auto gone = driver_->Recover(*persisted);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), Code::kNotFound);
  EXPECT_NE(gone.error().message().find("exited with code 3"), std::string::npos) << gone.error().message();
  EXPECT_NE(gone.error().message().find("while the agent was down"), std::string::npos) << gone.error().message();
  // The next Start replaces the dead container of the same name.
  auto again = driver_->Start(c);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_NE(again->state["container"], persisted->state["container"]);
}

TEST(DockerDriverDownTest, ADockerdThatDoesNotAnswerIsReportedNotFatal) {
  DockerDriverOptions o;
  o.socket = "/tmp/no-dockerd-" + std::to_string(getpid()) + ".sock";
  auto d = DockerDriver::Create(o);
  ASSERT_TRUE(d) << "the driver exists while dockerd is down";
  Json fp = (*d)->Fingerprint();
  EXPECT_FALSE(fp.value("healthy", true));
  EXPECT_NE(fp.value("detail", "").find("dockerd is not reachable at " + o.socket), std::string::npos) << fp;
  TaskConfig c;
  c.id = "default.down-0";
  c.command = "/bin/true";
  c.task_dir = "/tmp/no-dockerd-task";
  c.spec = {{"image", kBusyboxImage}};
  auto h = (*d)->Start(c);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kUnavailable) << h.error().ToString();
  EXPECT_NE(h.error().message().find("dockerd is not reachable"), std::string::npos);
}

}  // namespace
}  // namespace mentat
