// hull's commands end to end (the fixture: hull_fixture.h), as root: every command and exit
// code; manifest errors naming the field; concurrent runs of one name; pid reuse; inspect's
// namespaces; a seccomp kill reported by name; the sandbox's escape battery inside a hull
// container; network none; a .tar.gz rootfs, and one with "../" entries refused.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/harness.h"
#include "e2e/hull_fixture.h"
#include "runtimes/sandbox/sandbox_testing.h"

namespace mentat::e2e {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

TEST_F(HullTest, VersionAndUsageErrors) {
  auto v = Hull({"version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("hull 0.1.0"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("libseccomp"), std::string::npos);
  EXPECT_EQ(Hull({}).code, 1);
  EXPECT_EQ(Hull({"frobnicate"}).code, 1);
  EXPECT_EQ(Hull({"run"}).code, 1) << "no manifest";
  auto missing = Hull({"run", dir_ + "/missing.json"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("cannot read manifest"), std::string::npos) << missing.err;
  EXPECT_EQ(Hull({"exec", "x"}).code, 1) << "exec without a command";
  EXPECT_EQ(Hull({"stop"}).code, 1);
  // Bridge fields are checked before anything is made.
  auto badip = Hull({"run", Manifest("badip", {"/bin/true"},
                                     {{"network", "bridge"}, {"bridge", {{"ip", "10.99.0.5"}}}})});
  EXPECT_EQ(badip.code, 3);
  EXPECT_NE(badip.err.find("bridge.ip"), std::string::npos) << badip.err;
  // Commands on an unknown container: a runtime error naming it.
  auto unknown = Hull({"inspect", "nobody"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("no container named nobody"), std::string::npos) << unknown.err;
  EXPECT_EQ(Hull({"logs", "nobody"}).code, 2);
  EXPECT_EQ(Hull({"stop", "nobody"}).code, 2);
  EXPECT_EQ(Hull({"exec", "nobody", "/bin/true"}).code, 2);
}

TEST_F(HullTest, ManifestErrorsExit3NamingTheField) {
  std::string bad = dir_ + "/bad.json";
  std::ofstream(bad) << "{\"name\": \"x\", ";
  auto r = Hull({"run", bad});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;

  std::ofstream(bad, std::ios::trunc) << Json({{"name", "x"}, {"rootfs", root_}}).dump();
  r = Hull({"run", bad});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("argv"), std::string::npos) << r.err;

  r = Hull({"run", Manifest("badprofile", {"/bin/true"}, {{"profile", "cobol"}})});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("profile"), std::string::npos) << r.err;

  r = Hull({"run", Manifest("bad_name!", {"/bin/true"})});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("name"), std::string::npos) << r.err;

  r = Hull({"run", Manifest("nocwd", {"/bin/true"}, {{"cwd", "/no/such/dir"}})});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("cwd: /no/such/dir"), std::string::npos) << r.err;

  r = Hull({"run", Manifest("noroot", {"/bin/true"}, {{"rootfs", dir_ + "/nowhere"}})});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("rootfs"), std::string::npos) << r.err;
}

TEST_F(HullTest, RunPsLogsExecStopKill) {
  auto r = Hull({"run", Manifest("web", {"/bin/sh", "-c",
                                          "trap 'echo got-term; exit 3' TERM; echo hello; echo oops >&2; "
                                          "while true; do sleep 1; done"})});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("web ", 0), 0u) << r.out;
  // hull run returned: the container lives on without it.
  auto ps = Hull({"ps"});
  EXPECT_EQ(ps.code, 0);
  EXPECT_EQ(ps.out.rfind("NAME", 0), 0u);
  EXPECT_NE(ps.out.find("PID"), std::string::npos);
  EXPECT_NE(ps.out.find("UPTIME"), std::string::npos);
  EXPECT_NE(ps.out.find("ARGV"), std::string::npos);
  EXPECT_NE(ps.out.find("web "), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("/bin/sh -c trap"), std::string::npos) << ps.out;

  Outcome logs;
  auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until) {
    logs = Hull({"logs", "web"});
    if (logs.out.find("hello") != std::string::npos && logs.err.find("oops") != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(logs.code, 0);
  EXPECT_EQ(logs.out, "hello\n");
  EXPECT_EQ(logs.err, "oops\n");
  EXPECT_EQ(Slurp(state_ + "/containers/web/stdout.log"), "hello\n");
  EXPECT_TRUE(fs::exists(state_ + "/containers/web/state.json"));

  // exec: in the container's world (its PID 1, its hostname), exit codes relayed.
  auto e = Hull({"exec", "web", "/bin/sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; exit 7"});
  EXPECT_EQ(e.code, 7) << e.err;
  // PID 1 is sandbox-init, which adopted the workload PID 1 forked before exec'ing it (pid 2).
  EXPECT_EQ(e.out.rfind("web\nsandbox-init --status-fd 3 --exec-fd 4 --adopt 2 --exec-error-fd ", 0), 0u) << e.out;
  EXPECT_NE(e.out.find(" -- /bin/sh -c trap"), std::string::npos) << e.out;
  auto nope = Hull({"exec", "web", "/bin/nope"});
  EXPECT_EQ(nope.code, 127);
  EXPECT_NE(nope.err.find("exec failed: /bin/nope"), std::string::npos) << nope.err;
  // The exec'd process is in the container's cgroup (v1 memory hierarchy) and has no capability.
  auto cg = Hull({"exec", "web", "/bin/sh", "-c", "grep CapEff /proc/self/status"});
  EXPECT_NE(cg.out.find("0000000000000000"), std::string::npos) << cg.out;
  // Its group is named for this state directory too (StateDir::CgroupPath).
  const std::string group = Inspect("web")["cgroup"].value("path", "");
  EXPECT_EQ(group.rfind("hull/web-", 0), 0u) << group;
  EXPECT_TRUE(fs::exists("/sys/fs/cgroup/memory/" + group)) << group;

  // logs -f follows until the exit, which stop brings: SIGTERM reaches the workload.
  auto follower = std::async(std::launch::async, [&] { return Hull({"logs", "-f", "web"}); });
  auto stop = Hull({"stop", "web"});
  EXPECT_EQ(stop.code, 0) << stop.err;
  EXPECT_NE(stop.out.find("exited 3"), std::string::npos) << stop.out;
  auto followed = follower.get();
  EXPECT_EQ(followed.code, 0);
  EXPECT_EQ(followed.out, "hello\ngot-term\n");
  auto j = Inspect("web");
  EXPECT_EQ(j["status"], "exited");
  EXPECT_EQ(j["exit"]["exit_code"], 3);
  EXPECT_EQ(Hull({"ps"}).out.find("web "), std::string::npos) << "ps lists running containers";
  EXPECT_NE(Hull({"ps", "-a"}).out.find("exited"), std::string::npos);
  EXPECT_EQ(Hull({"stop", "web"}).code, 0) << "stopping an exited container is a no-op";
  EXPECT_EQ(Hull({"exec", "web", "/bin/true"}).code, 2) << "not running";
  EXPECT_FALSE(fs::exists("/sys/fs/cgroup/memory/" + group)) << "the cgroup went with it";

  // A workload that ignores SIGTERM is SIGKILLed after the grace period; kill is immediate.
  ASSERT_EQ(Hull({"run", Manifest("stubborn", {"/bin/sh", "-c",
                                               "trap '' TERM; echo ignoring; while true; do sleep 1; done"})}).code, 0);
  // `run` returns once the shell runs, maybe before it set its trap: stop after it did.
  ASSERT_TRUE(WaitFor([&] { return Hull({"logs", "stubborn"}).out == "ignoring\n"; }, 10s))
      << Hull({"logs", "stubborn"}).out;
  auto t0 = std::chrono::steady_clock::now();
  stop = Hull({"stop", "-t", "1", "stubborn"});
  EXPECT_EQ(stop.code, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_NE(stop.out.find("SIGKILL"), std::string::npos) << stop.out;
  ASSERT_EQ(Hull({"run", Manifest("victim", {"/bin/sleep", "600"})}).code, 0);
  auto k = Hull({"kill", "victim"});
  EXPECT_EQ(k.code, 0) << k.err;
  EXPECT_NE(k.out.find("SIGKILL"), std::string::npos) << k.out;
  // A name is reusable once its container has exited.
  ASSERT_EQ(Hull({"run", dir_ + "/victim.json"}).code, 0);
  EXPECT_EQ(Inspect("victim")["status"], "running");
}

TEST_F(HullTest, TwoConcurrentRunsOfOneNameExactlyOneWins) {
  std::string m = Manifest("solo", {"/bin/sleep", "600"});
  for (int round = 0; round < 3; ++round) {
    auto a = std::async(std::launch::async, [&] { return Hull({"run", m}); });
    auto b = std::async(std::launch::async, [&] { return Hull({"run", m}); });
    Outcome ra = a.get(), rb = b.get();
    EXPECT_EQ((ra.code == 0) + (rb.code == 0), 1) << ra.err << rb.err;
    const Outcome& loser = ra.code == 0 ? rb : ra;
    EXPECT_EQ(loser.code, 2);
    EXPECT_TRUE(loser.err.find("already running") != std::string::npos ||
                loser.err.find("another hull") != std::string::npos)
        << loser.err;
    ASSERT_EQ(Hull({"kill", "solo"}).code, 0);
  }
}

TEST_F(HullTest, ADeadContainerIsNeverConfusedWithARecycledPid) {
  ASSERT_EQ(Hull({"run", Manifest("ghost", {"/bin/sleep", "600"})}).code, 0);
  ASSERT_EQ(Hull({"kill", "ghost"}).code, 0);
  // Pretend the recorded pid was reused by a live process (this test) and the exit unseen.
  std::string path = state_ + "/containers/ghost/state.json";
  Json s = Json::parse(Slurp(path));
  s["status"] = "running";
  s["pid"] = ::getpid();
  s.erase("exit");
  std::ofstream(path, std::ios::trunc) << s.dump();
  std::ofstream(state_ + "/containers/ghost/exit-status.json", std::ios::trunc);
  auto ps = Hull({"ps"});
  EXPECT_EQ(ps.out.find("ghost"), std::string::npos) << ps.out;
  EXPECT_EQ(Inspect("ghost")["status"], "exited");
  EXPECT_EQ(Hull({"kill", "ghost"}).code, 0);
  EXPECT_EQ(::kill(::getpid(), 0), 0) << "and nothing was sent to the pid's new owner";
}

TEST_F(HullTest, ExecFailureOfTheWorkloadExits127) {
  auto r = Hull({"run", Manifest("noexec", {"/bin/does-not-exist"})});
  EXPECT_EQ(r.code, 127);
  EXPECT_NE(r.err.find("exec failed: /bin/does-not-exist"), std::string::npos) << r.err;
  std::ofstream(root_ + "/bin/notexec") << "#!/bin/sh\n";
  r = Hull({"run", Manifest("notexec", {"/bin/notexec"})});
  EXPECT_EQ(r.code, 127);
  EXPECT_NE(r.err.find("not executable"), std::string::npos) << r.err;
}

TEST_F(HullTest, InspectShowsLimitsUsageNamespacesAndMounts) {
  ASSERT_EQ(Hull({"run", Manifest("insp", {"/bin/sleep", "600"},
                                  {{"limits", {{"memory_mb", 64}, {"cpu", 0.5}, {"pids", 16}}},
                                   {"hostname", "box"}})})
                .code,
            0);
  Json j = Inspect("insp");
  EXPECT_EQ(j["status"], "running");
  EXPECT_EQ(j["hostname"], "box");
  EXPECT_EQ(j["cgroup"]["version"], "v1");
  EXPECT_EQ(j["cgroup"]["limits"]["memory_bytes"], 64 << 20);
  EXPECT_EQ(j["cgroup"]["limits"]["cpu_percent"], 50);
  EXPECT_EQ(j["cgroup"]["limits"]["pids_max"], 16);
  EXPECT_GE(j["cgroup"]["usage"]["pids"].get<int>(), 2);
  EXPECT_GT(j["cgroup"]["usage"]["memory_bytes"].get<int64_t>(), 0);
  // Without --rootless: pid, net, mnt, uts, ipc and cgroup are the container's own, six
  // distinct inodes; user and time stay the host's (the user namespace is the seventh, with
  // --rootless, a later part).
  std::set<uint64_t> own;
  for (const char* ns : {"pid", "net", "mnt", "uts", "ipc", "cgroup"}) {
    EXPECT_TRUE(j["namespaces"][ns]["own"].get<bool>()) << ns;
    own.insert(j["namespaces"][ns]["inode"].get<uint64_t>());
  }
  EXPECT_EQ(own.size(), 6u);
  EXPECT_EQ(j["own_namespaces"], 6);
  EXPECT_FALSE(j["namespaces"]["user"]["own"].get<bool>());
  ASSERT_TRUE(j["mounts"].is_array());
  EXPECT_LE(j["mounts"].size(), 12u);
  EXPECT_EQ(j["mounts"][0]["mountpoint"], "/");
  EXPECT_EQ(j["mounts"][1]["mountpoint"], "/proc");
}

TEST_F(HullTest, ASeccompViolationIsReportedByName) {
  // setns is in no profile but java's... and not in default: the whole process is killed.
  // Once PID 1 is sandbox-init and may be looked at: for a moment after the workload starts it
  // is still hull's forking code, and while it execs sandbox-init its new cmdline shows before
  // the kernel makes it dumpable again. Until then /proc/1/ns refuses the workload (EACCES, and
  // nsenter fails before it calls setns), so each waits until readlink of the namespace works
  // (readlink is allowed; it asks the same ptrace access check as opening it).
  ASSERT_EQ(Hull({"run", Manifest("sys", {"/bin/busybox", "sh", "-c",
                                          "until /bin/busybox grep -q sandbox-init /proc/1/cmdline && "
                                          "/bin/busybox readlink /proc/1/ns/mnt >/dev/null 2>&1; do :; done; "
                                          "exec /bin/busybox nsenter -t 1 -m /bin/true"})}).code,
            0);
  Json j = AwaitExit("sys");
  EXPECT_EQ(j["exit"]["signal"], SIGSYS) << j.dump();
  EXPECT_EQ(j["exit"]["signal_name"], "SIGSYS");
  EXPECT_EQ(j["exit"]["seccomp"]["name"], "setns") << j.dump();
  EXPECT_EQ(j["exit"]["seccomp"]["syscall"], 308);
  auto logs = Hull({"logs", "sys"});
  EXPECT_NE(logs.err.find("on syscall 308 (setns)"), std::string::npos) << logs.err;
  // In a shell's child too (the shell survives and exits 159).
  ASSERT_EQ(Hull({"run", Manifest("sys2", {"/bin/sh", "-c",
                                           "until grep -q sandbox-init /proc/1/cmdline && "
                                           "busybox readlink /proc/1/ns/uts >/dev/null 2>&1; do :; done; "
                                           "busybox nsenter -t 1 -u true; echo after"})}).code, 0);
  j = AwaitExit("sys2");
  EXPECT_EQ(j["exit"]["seccomp"]["name"], "setns") << j.dump();
}

TEST_F(HullTest, TheEscapeBatteryIsContainedInsideHull) {
  fs::copy_file(Runfile("runtimes/sandbox/escape-probe"), root_ + "/bin/escape-probe");
  fs::copy_file(Runfile("runtimes/sandbox/escape-probe"), root_ + "/bin/suid-probe");
  ASSERT_EQ(::chown((root_ + "/bin/suid-probe").c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod((root_ + "/bin/suid-probe").c_str(), 04755), 0);
  std::string marker = dir_ + "/host-only-marker";
  std::ofstream(marker) << "host\n";
  ASSERT_EQ(Hull({"run", Manifest("probe", {"/bin/escape-probe", std::to_string(::getpid()), marker},
                                  {{"limits", {{"pids", 64}}}})})
                .code,
            0);
  Json j = AwaitExit("probe", 30s);
  std::string out = Slurp(state_ + "/containers/probe/stdout.log");
  SCOPED_TRACE(out + Slurp(state_ + "/containers/probe/stderr.log"));
  ExpectEscapeBatteryContained(out);
  // Under hull's allowlist the forbidden calls kill the probe's child outright.
  EXPECT_NE(out.find("PROBE ptrace-traceme contained (killed by seccomp: SIGSYS)"), std::string::npos);
  EXPECT_EQ(j["exit"]["exit_code"], 0) << j.dump();
  EXPECT_EQ(Slurp(marker), "host\n");
  EXPECT_FALSE(fs::exists("/etc/escape-written"));
}

TEST_F(HullTest, NetworkNoneHasOnlyLoopbackAndHostSharesTheHosts) {
  ASSERT_EQ(Hull({"run", Manifest("isolated", {"/bin/cat", "/proc/net/dev"})}).code, 0);
  AwaitExit("isolated");
  std::string dev = Slurp(state_ + "/containers/isolated/stdout.log");
  std::set<std::string> ifaces;
  std::istringstream lines(dev);
  for (std::string line; std::getline(lines, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    ifaces.insert(name);
  }
  EXPECT_EQ(ifaces, std::set<std::string>{"lo"}) << dev;
  // lo is up: the workload can talk to itself and nothing else.
  ASSERT_EQ(Hull({"run", Manifest("lo-up", {"/bin/sh", "-c", "cat /sys/class/net/lo/operstate 2>/dev/null; ip link show lo"})}).code, 0);
  AwaitExit("lo-up");
  EXPECT_NE(Slurp(state_ + "/containers/lo-up/stdout.log").find("UP"), std::string::npos);

  ASSERT_EQ(Hull({"run", Manifest("hostnet", {"/bin/sleep", "600"}, {{"network", "host"}})}).code, 0);
  Json j = Inspect("hostnet");
  EXPECT_FALSE(j["namespaces"]["net"]["own"].get<bool>());
  EXPECT_EQ(j["own_namespaces"], 5);
}

TEST_F(HullTest, ATarGzRootfsIsExtractedSafelyAndOnce) {
  std::string tarball = dir_ + "/busybox.tar.gz";
  ASSERT_EQ(std::system(("tar -C " + root_ + " -czf " + tarball + " .").c_str()), 0);
  auto r = Hull({"run", Manifest("fromtar", {"/bin/sh", "-c", "echo from-tar > /tmp/x; cat /tmp/x"},
                                 {{"rootfs", tarball}})});
  ASSERT_EQ(r.code, 0) << r.err;
  AwaitExit("fromtar");
  EXPECT_EQ(Slurp(state_ + "/containers/fromtar/stdout.log"), "from-tar\n");
  // Writes land in the container's own layer; the cache stays as extracted, and is reused.
  EXPECT_TRUE(fs::exists(state_ + "/containers/fromtar/upper/tmp/x"));
  int caches = 0;
  for (const auto& e : fs::directory_iterator(state_ + "/rootfs-cache")) caches += e.is_directory();
  EXPECT_EQ(caches, 1);
  ASSERT_EQ(Hull({"run", dir_ + "/fromtar.json"}).code, 0);
  caches = 0;
  for (const auto& e : fs::directory_iterator(state_ + "/rootfs-cache")) caches += e.is_directory();
  EXPECT_EQ(caches, 1);

  // An archive with a "../" entry is refused whole, naming the entry; nothing lands outside.
  std::string evil = dir_ + "/evil.tar.gz";
  std::string py = "import tarfile,io\n"
                   "t=tarfile.open('" + evil + "','w:gz')\n"
                   "for n in ['bin/ok','../escaped']:\n"
                   "  i=tarfile.TarInfo(n); d=b'x'; i.size=len(d); t.addfile(i,io.BytesIO(d))\n"
                   "t.close()\n";
  std::ofstream(dir_ + "/mk.py") << py;
  ASSERT_EQ(std::system(("python3 " + dir_ + "/mk.py").c_str()), 0);
  r = Hull({"run", Manifest("evil", {"/bin/ok"}, {{"rootfs", evil}})});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("\"../escaped\" leaves the root"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(state_ + "/escaped"));
  EXPECT_FALSE(fs::exists(state_ + "/rootfs-cache/escaped"));
}

}  // namespace
}  // namespace mentat::e2e
