// The Docker driver's own behaviour beyond the conformance suite, against the real dockerd:
// the rules checked again at Start (defence in depth), the hardened settings mapped onto
// HostConfig, the pids limit counted (forks from an exec, the container staying up), orphan
// cleanup by label, and a dockerd that does not answer.
#include "runtimes/docker/docker_driver.h"
#include "runtimes/logs/log_index.h"
#include "runtimes/logs/log_testing.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "apis/security_profile.h"
#include "runtimes/docker/docker_testing.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

// A Unix socket in front of the real dockerd: it passes every connection through, or, while
// `failing`, answers each new request 500 (a dockerd that is up but failing: not a 404).
class FlakyDockerProxy {
 public:
  explicit FlakyDockerProxy(std::string path) : path_(std::move(path)) {
    ::unlink(path_.c_str());
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 64) != 0) {
      ADD_FAILURE() << "proxy listen on " << path_ << ": " << strerror(errno);
    }
    accept_ = std::thread([this] { Accept(); });
  }
  ~FlakyDockerProxy() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    accept_.join();
    for (auto& t : conns_) t.join();
    ::close(listener_);
    ::unlink(path_.c_str());
  }
  std::atomic<bool> failing{false};
  const std::string& path() const { return path_; }

 private:
  void Accept() {
    while (!stop_) {
      struct pollfd p = {listener_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    if (failing) {
      char buf[4096];
      struct pollfd p = {c, POLLIN, 0};
      if (::poll(&p, 1, 2000) > 0) (void)!::read(c, buf, sizeof buf);
      std::string body = "{\"message\":\"injected failure\"}";
      std::string res = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      (void)!::write(c, res.data(), res.size());
      ::close(c);
      return;
    }
    int d = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, "/var/run/docker.sock", sizeof(a.sun_path) - 1);
    if (::connect(d, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(c);
      ::close(d);
      return;
    }
    char buf[65536];
    while (!stop_) {
      struct pollfd p[2] = {{c, POLLIN, 0}, {d, POLLIN, 0}};
      if (::poll(p, 2, 100) <= 0) continue;
      bool done = false;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0) { done = true; break; }
        int to = i == 0 ? d : c;
        for (ssize_t off = 0; off < n;) {
          ssize_t w = ::write(to, buf + off, n - off);
          if (w <= 0) { done = true; break; }
          off += w;
        }
      }
      if (done) break;
    }
    ::close(c);
    ::close(d);
  }
  std::string path_;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  std::vector<std::thread> conns_;
};

template <typename F>
bool WaitUntil(F f, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!f()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

class DockerDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto up = EnsureDockerd();
    ASSERT_TRUE(up) << up.error().message();
    DockerDriverOptions o;
    o.node_name = "ddt-" + std::to_string(getpid());
    // Containers an earlier, interrupted run of this test left (its node is another pid's): the
    // driver rightly refuses to remove another node's container, so the test clears its own kind.
    RunShell("docker ps -a --filter name=^/mentat-default. --format '{{.ID}} {{.Label \"mentat.node\"}}' | "
             "awk '$2 ~ /^ddt-/ && $2 != \"" + o.node_name + "\" {print $1}' | xargs -r docker rm -f");
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
    c.identity = {"default", id, id};
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
  EXPECT_EQ(RunShell("docker ps -aq --filter name=^/mentat-default.priv$"), "") << "nothing was created";
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
  EXPECT_NE(RunShell("docker ps -q --filter name=^/mentat-default.owned$"), "") << "an owned one stays";
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
  ASSERT_EQ(RunShell("docker stop -t 5 mentat-default.resume >/dev/null; docker inspect -f '{{.State.ExitCode}}' "
                     "mentat-default.resume"), "3\n");
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

TEST_F(DockerDriverTest, NamesOfTasksInDifferentNamespacesDoNotCollide) {
  // "team-a" + "web-0" and "team" + "a-web-0": with dots made dashes both were mentat-team-a-web-0,
  // and the second Start removed the first one's running container.
  auto a = Config("x", {"-c", "sleep 300"});
  a.id = "team-a.web-0";
  a.identity = {"team-a", "web", "web-0", 0};
  auto b = Config("y", {"-c", "sleep 300"});
  b.id = "team.a-web-0";
  b.identity = {"team", "a-web", "a-web-0", 0};
  ids_ = {a.id, b.id};
  auto ha = driver_->Start(a);
  ASSERT_TRUE(ha) << ha.error().ToString();
  auto hb = driver_->Start(b);
  ASSERT_TRUE(hb) << hb.error().ToString();
  EXPECT_NE(ha->state["name"], hb->state["name"]);
  EXPECT_EQ(RunShell("docker inspect -f '{{.State.Running}}' " + ha->state["container"].get<std::string>()), "true\n")
      << "the first task's container still runs";
  EXPECT_EQ(RunShell("docker inspect -f '{{index .Config.Labels \"mentat.task\"}} {{index .Config.Labels "
                     "\"mentat.namespace\"}}' " + hb->state["container"].get<std::string>()),
            "team.a-web-0 team\n");
}

TEST_F(DockerDriverTest, AConflictingContainerOfAnotherTaskIsNotRemoved) {
  // This node's label on a container of the same name is not enough: the task label must match.
  std::string node = "ddt-" + std::to_string(getpid());
  auto c = Config("clash-0", {"-c", "sleep 300"});
  std::string name = "mentat-" + c.id;
  RunShell("docker rm -f " + name + " >/dev/null 2>&1; docker run -d --name " + name + " --label mentat.node=" + node +
           " --label mentat.task=other.task-0 " + kBusyboxImage + " sleep 300");
  auto h = driver_->Start(c);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kAlreadyExists) << h.error().ToString();
  EXPECT_NE(h.error().message().find("belongs to task other.task-0"), std::string::npos) << h.error().message();
  EXPECT_EQ(RunShell("docker inspect -f '{{.State.Running}}' " + name), "true\n") << "the other task's container runs on";
  RunShell("docker rm -f " + name);
}

TEST_F(DockerDriverTest, AdoptRefusesMentatContainersAndSettingsTheProfileForbids) {
  std::string tag = std::to_string(getpid());
  // Another Mentat task's live container: never taken over.
  auto victim = Config("victim-0", {"-c", "sleep 300"});
  auto hv = driver_->Start(victim);
  ASSERT_TRUE(hv) << hv.error().ToString();
  auto thief = Config("thief-0", {}, {{"driver", "docker"}, {"adopt", {{"container", hv->state["name"]}}}});
  auto ht = driver_->Start(thief);
  ASSERT_FALSE(ht) << "adopted another task's container";
  EXPECT_EQ(ht.error().code(), Code::kFailedPrecondition) << ht.error().ToString();
  EXPECT_NE(ht.error().message().find("managed by Mentat"), std::string::npos) << ht.error().message();
  // Another node's (or namespace's): the labels say Mentat, whoever's it is.
  std::string foreign = "ddt-foreign-" + tag;
  RunShell("docker run -d --name " + foreign + " --label mentat.node=elsewhere --label mentat.task=ns.db-0 " +
           kBusyboxImage + " sleep 300");
  auto hf = driver_->Start(Config("thief-1", {}, {{"driver", "docker"}, {"adopt", {{"container", foreign}}}}));
  ASSERT_FALSE(hf);
  EXPECT_NE(hf.error().message().find("mentat.node=elsewhere"), std::string::npos) << hf.error().message();

  // Under docker-hardened, a privileged container with the Docker socket is refused, naming why.
  std::string priv = "ddt-priv-" + tag;
  // (Created, not run: a nested dockerd may not be allowed to start a privileged one. Adopting a
  // stopped container would start it, so "never started" also shows it was left alone.)
  RunShell("docker create --name " + priv + " --privileged -v /var/run/docker.sock:/var/run/docker.sock " +
           kBusyboxImage + " sleep 300");
  auto hp = driver_->Start(Config("hard-0", {}, {{"driver", "docker"}, {"security", {{"profile", "docker-hardened"}}},
                                                 {"adopt", {{"container", priv}}}}));
  ASSERT_FALSE(hp) << "a hardened service adopted a privileged container";
  EXPECT_EQ(hp.error().code(), Code::kForbidden) << hp.error().ToString();
  for (const char* why : {"docker.privileged", "volumes[0].source", "user", "docker.cap_drop"}) {
    EXPECT_NE(hp.error().message().find(why), std::string::npos) << why << " in " << hp.error().message();
  }
  // docker-legacy forbids privileged too.
  auto hl = driver_->Start(Config("legacy-0", {}, {{"driver", "docker"}, {"security", {{"profile", "docker-legacy"}}},
                                                   {"adopt", {{"container", priv}}}}));
  ASSERT_FALSE(hl);
  EXPECT_NE(hl.error().message().find("docker.privileged"), std::string::npos) << hl.error().message();
  // Nothing was touched.
  EXPECT_EQ(RunShell("docker inspect -f '{{.State.Status}}' " + priv + " " + foreign + " " +
                     hv->state["container"].get<std::string>()), "created\nrunning\nrunning\n");
  // A plain container with settings the profile allows is still adopted.
  std::string ok = "ddt-ok-" + tag;
  RunShell("docker run -d --name " + ok + " --user 65534:65534 --read-only --cap-drop ALL "
           "--security-opt no-new-privileges " + kBusyboxImage + " sleep 300");
  auto hok = driver_->Start(Config("ok-0", {}, {{"driver", "docker"}, {"security", {{"profile", "docker-legacy"}}},
                                                {"adopt", {{"container", ok}}}}));
  EXPECT_TRUE(hok) << hok.error().ToString();
  RunShell("docker rm -f " + foreign + " " + priv + " " + ok + " >/dev/null");
}

TEST_F(DockerDriverTest, ARecoverThatDockerdFailsKeepsTheTaskAndItsContainer) {
  auto c = Config("kept", {"-c", "sleep 300"});
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto persisted = TaskHandle::FromJson(Json::parse(h->ToJson().dump()));
  ASSERT_TRUE(persisted);
  driver_.reset();
  // The agent comes back while dockerd answers 500: that is no news of the container.
  // Under /tmp: a Unix socket path has at most 107 bytes, and TEST_TMPDIR can be longer.
  FlakyDockerProxy proxy("/tmp/ddt-flaky-" + std::to_string(getpid()) + ".sock");
  proxy.failing = true;
  DockerDriverOptions o;
  o.node_name = "ddt-" + std::to_string(getpid());
  o.socket = proxy.path();
  driver_ = std::move(*DockerDriver::Create(o));
  auto st = driver_->Recover(*persisted);
  if (!st) {
    // Without the fix: not kept. Restore a working driver so that the rest still runs.
    ADD_FAILURE() << "a transient failure is not an exit: " << st.error().ToString();
  }
  proxy.failing = false;
  // Orphan cleanup after recovery leaves it alone.
  auto removed = driver_->CleanupOrphans();
  ASSERT_TRUE(removed) << removed.error().ToString();
  EXPECT_TRUE(removed->empty()) << removed->front();
  EXPECT_EQ(RunShell("docker inspect -f '{{.State.Running}}' " + persisted->state["container"].get<std::string>()),
            "true\n");
  auto s = driver_->Inspect(c.id);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, TaskState::kRunning);
  // Looked at again once dockerd answers: when it dies, the exit is reported.
  RunShell("docker kill " + persisted->state["container"].get<std::string>());
  auto exit = driver_->Wait(c.id, 30s);
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->has_value()) << "the exit of a task recovered while dockerd failed is reported";
  driver_.reset();  // before the proxy goes
  o.socket = docker::kDefaultSocket;
  driver_ = std::move(*DockerDriver::Create(o));
  RunShell("docker rm -f " + persisted->state["container"].get<std::string>() + " >/dev/null");
}

TEST_F(DockerDriverTest, ALongLineIsLoggedWhole) {
  // Docker splits a 40 KiB line into 16 KiB messages with one timestamp: every piece is kept.
  auto c = Config("long", {"-c", "head -c 40960 /dev/zero | tr '\\0' x; echo; echo >&2 err; echo end"});
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto exit = driver_->Wait(c.id, 30s);
  ASSERT_TRUE(exit && exit->has_value());
  std::ifstream f(c.task_dir + "/stdout.log");
  std::string out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(out, std::string(40960, 'x') + "\nend\n") << out.size() << " bytes";
  std::ifstream e(c.task_dir + "/stderr.log");
  std::string err((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
  EXPECT_EQ(err, "err\n");
  std::ifstream since(c.task_dir + "/docker-logs.since");
  std::string stamp;
  int64_t count = -1;
  EXPECT_TRUE(since >> stamp >> count) << "the resume point is saved";
  EXPECT_GE(count, 1);
}

TEST_F(DockerDriverTest, BothStreamsMergeInOrderByDockersTimestamps) {
  // Paced: Docker stamps each message as it reads it, so its order across streams is its read
  // order, as for the log relay.
  auto c = Config("merged", {"-c", "i=0; while [ $i -lt 10 ]; do echo out$i; sleep 0.05; echo err$i >&2; "
                                   "sleep 0.05; i=$((i+1)); done"});
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto exit = driver_->Wait(c.id, 30s);
  ASSERT_TRUE(exit && exit->has_value());
  auto logs = driver_->Logs(c.id);
  ASSERT_TRUE(logs);
  EXPECT_TRUE(logs->self_indexed) << "the pump indexes: the agent must not sample";
  EXPECT_EQ(MergedLines(c.task_dir), AlternatingLines(10));
  auto records = ReadIndex(c.task_dir + "/stdout.idx");
  ASSERT_FALSE(records.empty());
  EXPECT_GT(records.front().time_ns, kNsIndexFloor);
}

TEST_F(DockerDriverTest, KillingAnExecEndsItsCommandOnly) {
  auto c = Config("execkill", {"-c", "sleep 300"});
  ASSERT_TRUE(driver_->Start(c));
  auto s = driver_->Exec(c.id, {.command = {"sleep", "300"}}, {});
  ASSERT_TRUE(s) << s.error().ToString();
  (*s)->Kill();
  auto r = (*s)->Wait(20s);
  ASSERT_TRUE(r.has_value()) << "the exec'd command still runs";
  auto st = driver_->Inspect(c.id);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, TaskState::kRunning) << "the container runs on";
}

TEST_F(DockerDriverTest, VolumeSourcesAreResolvedOnTheNodeAndCheckedAgain) {
  // Data paths of our own under /tmp: TEST_TMPDIR lies under /root with Bazel's default output
  // base, and /root is itself a host system path.
  char tmpl[] = "/tmp/ddt-volumes-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  dir_ = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{tmpl};
  // A path that looks harmless and is a symlink to /etc: refused once resolved, nothing created.
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  std::string link = dir_ + "/innocent";
  std::filesystem::remove(link, ec);
  std::filesystem::create_directory_symlink("/etc", link, ec);
  ASSERT_FALSE(ec) << ec.message();
  Json hardened = {{"driver", "docker"}, {"security", {{"profile", "docker-hardened"}}}};
  Json spec = hardened;
  spec["volumes"] = {{{"source", link}, {"target", "/data"}}};
  auto c = Config("symlink-0", {"-c", "sleep 300"}, spec);
  auto h = driver_->Start(c);
  ASSERT_FALSE(h) << "mounted " << link << " -> /etc";
  EXPECT_EQ(h.error().code(), Code::kForbidden) << h.error().ToString();
  EXPECT_NE(h.error().ToString().find("volumes[0].source"), std::string::npos) << h.error().ToString();
  EXPECT_NE(h.error().ToString().find("/etc"), std::string::npos) << h.error().ToString();
  EXPECT_EQ(RunShell("docker ps -aq --filter name=^/mentat-" + c.id + "$"), "");

  // A real directory is mounted by its resolved path.
  std::string real = dir_ + "/real-data";
  std::filesystem::create_directories(real, ec);
  std::filesystem::remove(dir_ + "/via-link", ec);
  std::filesystem::create_directory_symlink(real, dir_ + "/via-link", ec);
  spec["volumes"] = {{{"source", dir_ + "/via-link"}, {"target", "/data"}}};
  auto ok = Config("symlink-1", {"-c", "sleep 300"}, spec);
  auto hok = driver_->Start(ok);
  ASSERT_TRUE(hok) << hok.error().ToString();
  EXPECT_EQ(RunShell("docker inspect -f '{{range .Mounts}}{{.Source}}{{end}}' " + hok->state["container"].get<std::string>()),
            std::filesystem::canonical(real).string() + "\n");

  // The agent's data directory, or a directory holding it, is never mounted under a profile.
  DockerDriverOptions o;
  o.node_name = "ddt-" + std::to_string(getpid());
  o.data_dir = dir_ + "/agent-data";
  std::filesystem::create_directories(o.data_dir, ec);
  auto d = DockerDriver::Create(o);
  ASSERT_TRUE(d);
  spec["volumes"] = {{{"source", dir_}, {"target", "/data"}}};
  auto dd = (*d)->Start(Config("datadir-0", {"-c", "sleep 300"}, spec));
  ASSERT_FALSE(dd) << "mounted the directory holding the agent's data";
  EXPECT_EQ(dd.error().code(), Code::kForbidden);
  EXPECT_NE(dd.error().message().find("agent's data directory"), std::string::npos) << dd.error().message();
}

TEST_F(DockerDriverTest, TheStoredProfileTheAgentPassesGovernsTheContainer) {
  // A custom profile (not built in) as the server holds it, strict as docker-hardened: the
  // driver applies and checks it; without it the name alone would check nothing.
  Json custom;
  for (const auto& p : BuiltinProfiles()) {
    if (p["metadata"]["name"] == "docker-hardened") custom = p["spec"];
  }
  ASSERT_TRUE(custom.is_object());
  Json spec = {{"driver", "docker"}, {"security", {{"profile", "team-strict"}, {"resolved", custom}}},
               {"docker", {{"privileged", true}}}};
  auto h = driver_->Start(Config("custom-0", {"-c", "sleep 300"}, spec));
  ASSERT_FALSE(h) << "privileged under a stored hardened profile";
  EXPECT_EQ(h.error().code(), Code::kForbidden) << h.error().ToString();
  EXPECT_NE(h.error().ToString().find("docker.privileged"), std::string::npos) << h.error().ToString();
  // Allowed settings: the stored profile's defaults are what the container gets.
  spec["docker"] = Json::object();
  auto ok = driver_->Start(Config("custom-1", {"-c", "sleep 300"}, spec));
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(RunShell("docker inspect -f '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}' " +
                     ok->state["container"].get<std::string>()),
            "65534:65534 true [ALL]\n");
}

}  // namespace
}  // namespace mentat
