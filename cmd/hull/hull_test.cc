// hull end to end: the real binary, real namespaces, cgroups (v1 here), seccomp and Landlock,
// run as root (tag no-sandbox). Every command and exit code; manifest errors naming the field;
// concurrent runs of one name; pid reuse; inspect's namespaces; a seccomp kill reported by name;
// the sandbox's escape battery inside a hull container; network none; a .tar.gz rootfs, and
// one with "../" entries refused. Part 2: --rootless (uid 0 inside, an unprivileged uid
// outside, 7 namespaces of its own) and network "bridge", the latter only inside a network
// namespace this test makes (BridgeTest): hull0, its veths and nft rules never touch the host's.
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtimes/sandbox/sandbox_testing.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string Runfile(const std::string& path) { return std::string(std::getenv("TEST_SRCDIR")) + "/mentat/" + path; }

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Outcome {
  int code = -1;
  std::string out, err;
};

class HullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/hull-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    state_ = dir_ + "/state";
    // A root of our own per test: the bound root is writable, and tests add files to it. It is
    // under /tmp, not TEST_TMPDIR: a --rootless container's mapped uid must reach it, and Bazel's
    // default output base is under /root (mode 0700).
    char tmpl[] = "/tmp/hull-test-root-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    ASSERT_EQ(::chmod(tmpl, 0755), 0);
    root_parent_ = tmpl;
    root_ = root_parent_ + "/rootfs";
    fs::copy(BusyboxRoot(), root_, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  }
  void TearDown() override {
    for (const auto& n : names_) Hull({"kill", n});
    std::error_code ec;
    if (!root_parent_.empty()) fs::remove_all(root_parent_, ec);
  }

  Outcome Hull(const std::vector<std::string>& args) {
    std::string out_path, err_path;
    pid_t pid = SpawnHull(args, &out_path, &err_path);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(out_path), Slurp(err_path)};
  }

  // Starts hull without waiting for it; its output goes to *out_path and *err_path.
  pid_t SpawnHull(const std::vector<std::string>& args, std::string* out_path_p, std::string* err_path_p) {
    // Calls may run at once (concurrent runs, logs -f beside stop): files of their own.
    static std::atomic<int> calls{0};
    const std::string n = std::to_string(calls++);
    const std::string out_path = *out_path_p = dir_ + "/out." + n, err_path = *err_path_p = dir_ + "/err." + n;
    pid_t pid = ::fork();
    if (pid == 0) {
      // Into the test's own network namespace (BridgeTest); never the host's for bridge work.
      if (netns_fd_ >= 0 && ::setns(netns_fd_, CLONE_NEWNET) != 0) _exit(125);
      ::unsetenv("SUDO_UID");
      ::unsetenv("SUDO_GID");
      for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
      ::setenv("HULL_STATE_DIR", state_.c_str(), 1);
      // Leases are host-wide (per network namespace and bridge): the test's own, under dir_.
      ::setenv("HULL_LEASE_ROOT", (dir_ + "/run").c_str(), 1);
      ::setenv("MENTAT_SANDBOX_INIT", Runfile("cmd/sandbox-init/sandbox-init").c_str(), 1);
      std::FILE* o = std::freopen(out_path.c_str(), "w", stdout);
      std::FILE* e = std::freopen(err_path.c_str(), "w", stderr);
      (void)o;
      (void)e;
      if (run_as_ >= 0 && (::setgroups(0, nullptr) != 0 || ::setgid(run_as_) != 0 || ::setuid(run_as_) != 0)) _exit(124);
      std::vector<std::string> a = {Runfile("cmd/hull/hull")};
      a.insert(a.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(126);
    }
    return pid;
  }

  std::string Manifest(const std::string& name, const Json& argv, Json extra = Json::object()) {
    Json m = {{"name", name}, {"rootfs", root_}, {"argv", argv}};
    m.update(extra);
    std::string path = dir_ + "/" + name + ".json";
    std::ofstream(path) << m.dump();
    names_.push_back(name);
    return path;
  }

  Json Inspect(const std::string& name) {
    auto r = Hull({"inspect", name});
    EXPECT_EQ(r.code, 0) << r.err;
    return Json::parse(r.out, nullptr, false);
  }

  // Waits (deadline, not a sleep) until `name` has exited; returns its inspect.
  Json AwaitExit(const std::string& name, std::chrono::milliseconds deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    Json j;
    while (std::chrono::steady_clock::now() < until) {
      j = Inspect(name);
      if (j.value("status", "") == "exited") return j;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << name << " did not exit: " << j.dump();
    return j;
  }

  // The host pid of the container's workload (pid 2 inside), from state.json.
  pid_t WorkloadPid(const std::string& name) {
    return Json::parse(Slurp(state_ + "/containers/" + name + "/state.json"))["workload_pid"].get<pid_t>();
  }

  // Waits (deadline, not a sleep) until `name`'s stdout.log contains `text`.
  std::string AwaitOutput(const std::string& name, const std::string& text, std::chrono::milliseconds deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    std::string out;
    while (std::chrono::steady_clock::now() < until) {
      out = Slurp(state_ + "/containers/" + name + "/stdout.log");
      if (out.find(text) != std::string::npos) return out;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << name << " never printed " << text << ": " << out;
    return out;
  }

  std::string dir_, state_, root_, root_parent_;
  std::vector<std::string> names_;
  int netns_fd_ = -1;                                    // BridgeTest's network namespace
  std::vector<std::pair<std::string, std::string>> env_;  // extra environment for hull
  int run_as_ = -1;                                      // run hull as this uid/gid (not root)
};

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
  EXPECT_FALSE(fs::exists("/sys/fs/cgroup/memory/hull/web")) << "the cgroup went with it";

  // A workload that ignores SIGTERM is SIGKILLed after the grace period; kill is immediate.
  ASSERT_EQ(Hull({"run", Manifest("stubborn", {"/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"})}).code, 0);
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
  // Once PID 1 is sandbox-init (for a moment after the workload starts it is still hull's
  // forking code, not dumpable, and /proc/1/ns refuses the workload).
  ASSERT_EQ(Hull({"run", Manifest("sys", {"/bin/busybox", "sh", "-c",
                                          "until /bin/busybox grep -q sandbox-init /proc/1/cmdline; do :; done; "
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
                                           "until grep -q sandbox-init /proc/1/cmdline; do :; done; "
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

// --rootless, hull run by root: the container's 0 is host uid 100000 (no SUDO_UID), every layer
// still on, and the user namespace is the seventh of its own.
TEST_F(HullTest, RootlessIsUidZeroInsideAndUnprivilegedOutside) {
  // A root-only file in the rootfs: uid 0 inside is not root outside.
  std::ofstream(root_ + "/secret") << "host root only\n";
  ASSERT_EQ(::chmod((root_ + "/secret").c_str(), 0600), 0);
  auto r = Hull({"run", "--rootless",
                 Manifest("rl", {"/bin/sh", "-c",
                                 "echo uid=$(id -u) gid=$(id -g); cat /proc/self/uid_map; cat /secret || echo no-secret; "
                                 "echo procs=$(ls /proc | grep -c '^[0-9]'); echo ready; exec sleep 600"})});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string out = AwaitOutput("rl", "ready");
  EXPECT_NE(out.find("uid=0 gid=0"), std::string::npos) << out;
  EXPECT_NE(out.find("0     100000          1"), std::string::npos) << out;
  EXPECT_NE(out.find("no-secret"), std::string::npos) << out;
  EXPECT_EQ(out.find("host root only"), std::string::npos) << out;
  // The host's pids are not there: sandbox-init, the shell, its subshell, ls and grep at most.
  ASSERT_NE(out.find("procs="), std::string::npos) << out;
  EXPECT_LE(std::stoi(out.substr(out.find("procs=") + 6)), 5) << out;

  // Outside, the workload is the unprivileged uid.
  std::string status = Slurp("/proc/" + std::to_string(WorkloadPid("rl")) + "/status");
  EXPECT_NE(status.find("Uid:\t100000\t100000\t100000\t100000"), std::string::npos) << status;
  EXPECT_NE(status.find("Gid:\t100000\t100000\t100000\t100000"), std::string::npos) << status;
  EXPECT_NE(status.find("Groups:\t \n"), std::string::npos) << "root's groups were dropped: " << status;

  Json j = Inspect("rl");
  EXPECT_EQ(j["rootless"]["uid"], 100000);
  EXPECT_EQ(j["rootless"]["gid"], 100000);
  std::set<uint64_t> own;
  for (const char* ns : {"pid", "net", "mnt", "uts", "ipc", "cgroup", "user"}) {
    EXPECT_TRUE(j["namespaces"][ns]["own"].get<bool>()) << ns;
    own.insert(j["namespaces"][ns]["inode"].get<uint64_t>());
  }
  EXPECT_EQ(own.size(), 7u) << j["namespaces"].dump();
  EXPECT_EQ(j["own_namespaces"], 7);
  EXPECT_EQ(j["cgroup"]["limits"]["pids_max"], 128) << "root's hull still sets limits";

  // exec joins the user namespace too: uid 0 there, still 100000 here, and still confined.
  auto e = Hull({"exec", "rl", "/bin/sh", "-c", "id -u; grep CapEff /proc/self/status"});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(e.out.rfind("0\n", 0), 0u) << e.out;
  EXPECT_NE(e.out.find("0000000000000000"), std::string::npos) << e.out;
  // Mounting (the host's root or anything) is refused: the profile kills the attempt.
  auto m = Hull({"exec", "rl", "/bin/sh", "-c", "mkdir -p /tmp/m; mount -t proc proc /tmp/m; echo rc=$?; ls /tmp/m | wc -l"});
  EXPECT_NE(m.out.find("rc=159"), std::string::npos) << m.out << m.err;  // 128 + SIGSYS
  EXPECT_NE(m.out.find("\n0\n"), std::string::npos) << m.out;
  ASSERT_EQ(Hull({"kill", "rl"}).code, 0);

  // hull run through sudo: the invoking user's ids.
  env_ = {{"SUDO_UID", "4242"}, {"SUDO_GID", "4343"}};
  ASSERT_EQ(Hull({"run", "--rootless", Manifest("sudo", {"/bin/sh", "-c", "echo uid=$(id -u); exec sleep 600"})}).code, 0);
  AwaitOutput("sudo", "uid=0");
  status = Slurp("/proc/" + std::to_string(WorkloadPid("sudo")) + "/status");
  EXPECT_NE(status.find("Uid:\t4242\t"), std::string::npos) << status;
  EXPECT_NE(status.find("Gid:\t4343\t"), std::string::npos) << status;
}

// hull --rootless (as root, in the host's mount namespace) makes the mount points of a bound
// rootfs that an earlier workload could write. A symlink planted there (`rm -r /tmp; ln -s /etc
// /tmp`) must never lead hull to the host: no chmod of the target, no file created through it.
TEST_F(HullTest, RootlessNeverFollowsASymlinkPlantedInTheRootfs) {
  // Host directories standing for /etc: their modes and contents must not change.
  const std::string etc = root_parent_ + "/etc", opt = root_parent_ + "/opt";
  fs::create_directories(etc);
  fs::create_directories(opt);
  ASSERT_EQ(::chmod(etc.c_str(), 0755), 0);
  fs::remove_all(root_ + "/tmp");
  fs::create_directory_symlink(etc, root_ + "/tmp");
  auto r = Hull({"run", "--rootless", Manifest("planted", {"/bin/true"})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(root_ + "/tmp is a symlink"), std::string::npos) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(etc.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "hull chmodded the symlink's host target";

  // A symlinked parent of a mounts[] target: nothing is created on the host through it.
  fs::remove(root_ + "/tmp");
  fs::create_directory(root_ + "/tmp");
  fs::create_directory_symlink(opt, root_ + "/srv");
  // Under root_parent_ (0755): the mapped uid must reach the sources of the plain run below.
  const std::string data = root_parent_ + "/data", file = root_parent_ + "/file";
  fs::create_directories(data);
  std::ofstream(file) << "x\n";
  r = Hull({"run", "--rootless",
            Manifest("planted2", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", data}, {"container", "/srv/a/b"}}})}})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(root_ + "/srv is a symlink"), std::string::npos) << r.err;
  r = Hull({"run", "--rootless",
            Manifest("planted3", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", file}, {"container", "/srv/f"}}})}})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(fs::is_empty(opt)) << "hull created host files through the symlink";
  EXPECT_TRUE(fs::is_empty(etc));

  // On a plain rootfs the mount points are made inside it (what the mapped uid then may mount
  // there is its business), and a plain run works.
  fs::remove(root_ + "/srv");
  auto plain = Hull({"run", "--rootless",
        Manifest("plain", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", data}, {"container", "/srv/a/b"}},
                                                                  Json{{"host", file}, {"container", "/srv/f"}}})}})});
  EXPECT_EQ(plain.code, 0) << plain.err;
  EXPECT_TRUE(fs::is_directory(root_ + "/srv/a/b"));
  EXPECT_TRUE(fs::is_regular_file(root_ + "/srv/f"));
  r = Hull({"run", "--rootless", Manifest("plain2", {"/bin/sh", "-c", "ls -ld /tmp && echo ok"})});
  ASSERT_EQ(r.code, 0) << r.err;
  AwaitOutput("plain2", "ok");
  ASSERT_EQ(::stat((root_ + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "an existing /tmp keeps its mode";
}

// Links an image can plant where hull mounts: `proc -> ..` (mounted through, it would cover or
// uncover a root) is refused, naming the step; a volume target that is a symlink too. In a
// plain run, the root has no parent: / and /.. are the same directory.
TEST_F(HullTest, SymlinkedMountPointsAreRefusedAndTheRootHasNoParent) {
  fs::remove_all(root_ + "/proc");
  fs::create_directory_symlink("..", root_ + "/proc");
  auto r = Hull({"run", Manifest("procup", {"/bin/true"})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("Too many levels of symbolic links"), std::string::npos) << r.err;
  fs::remove(root_ + "/proc");

  const std::string data = root_parent_ + "/vol";
  fs::create_directories(data);
  fs::create_directory_symlink("/", root_ + "/data");
  r = Hull({"run", Manifest("volup", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", data}, {"container", "/data"}}})}})});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("mounts[0]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Too many levels of symbolic links"), std::string::npos) << r.err;
  fs::remove(root_ + "/data");

  r = Hull({"run", Manifest("noparent", {"/bin/busybox", "sh", "-c",
                                         "/bin/busybox stat -c %d:%i / /.. /proc/1/root/..; echo ready; exec sleep 600"})});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(AwaitOutput("noparent", "ready"));
  std::string root, parent, pid1_parent;
  lines >> root >> parent >> pid1_parent;
  EXPECT_FALSE(root.empty());
  EXPECT_EQ(root, parent);
  EXPECT_EQ(root, pid1_parent);
}

// A read-only mount is read-only all the way down: a filesystem mounted below its host source
// (here a tmpfs, in the host's mount namespace for the test's length) cannot be written either.
TEST_F(HullTest, AReadOnlyMountIsReadOnlyThroughItsSubmounts) {
  const std::string data = root_parent_ + "/ro-source";
  fs::create_directories(data + "/sub");
  ASSERT_EQ(::mount("tmpfs", (data + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{data + "/sub"};
  auto r = Hull({"run", Manifest("ro", {"/bin/sh", "-c",
                                        "touch /data/a 2>&1; touch /data/sub/b 2>&1; echo ready; exec sleep 600"},
                                 {{"mounts", Json::array({Json{{"host", data}, {"container", "/data"}, {"readonly", true}}})}})});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string out = AwaitOutput("ro", "ready");
  EXPECT_NE(out.find("/data/a: Read-only file system"), std::string::npos) << out;
  EXPECT_NE(out.find("/data/sub/b: Read-only file system"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(data + "/sub/b"));
}

// Bind mounts under --rootless: a source the mapped uid can reach is there to read; one it
// cannot reach fails the run naming the mount. The pivot leaves nothing in the rootfs.
TEST_F(HullTest, RootlessBindMountsAreReadableAndAnUnreachableSourceIsNamed) {
  const std::string data = root_parent_ + "/shared";  // root_parent_ is 0755: reachable
  fs::create_directories(data);
  std::ofstream(data + "/greeting") << "hello from the host\n";
  auto r = Hull({"run", "--rootless",
                 Manifest("rlm", {"/bin/sh", "-c", "cat /data/greeting; echo ready; exec sleep 600"},
                          {{"mounts", Json::array({Json{{"host", data}, {"container", "/data"}, {"readonly", true}}})}})});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(AwaitOutput("rlm", "ready").find("hello from the host"), std::string::npos);
  ASSERT_EQ(Hull({"kill", "rlm"}).code, 0);

  const std::string hidden = root_parent_ + "/root-only";  // 0700 root: not for uid 100000
  fs::create_directories(hidden + "/d");
  ASSERT_EQ(::chmod(hidden.c_str(), 0700), 0);
  r = Hull({"run", "--rootless",
            Manifest("rlm2", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", hidden + "/d"}, {"container", "/data"}}})}})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("mounts[0]: " + hidden + "/d on /data"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("as host uid 100000"), std::string::npos) << r.err;
  for (const auto& e : fs::directory_iterator(root_)) {
    EXPECT_EQ(e.path().filename().string().find("oldroot"), std::string::npos) << e.path();
  }
}

// --rootless from an unprivileged user (nobody) with a rootfs of its own: 0 maps to that uid,
// the v1 cgroups are root's, so limits are skipped with a warning and the container still runs.
TEST_F(HullTest, RootlessFromAnUnprivilegedUserSkipsCgroupsWithAWarning) {
  const uid_t nobody = 65534;
  fs::create_directories(state_);
  ASSERT_EQ(std::system(("chown -R 65534:65534 " + state_ + " " + root_).c_str()), 0);
  for (fs::path p = dir_; p != "/"; p = p.parent_path()) {
    struct stat st;
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    if ((st.st_mode & 01) == 0) GTEST_SKIP() << p << " is not searchable by others: cannot run as nobody";
  }
  run_as_ = nobody;
  std::string manifest = Manifest("mine", {"/bin/sh", "-c", "echo uid=$(id -u); echo ready; exec sleep 600"});
  ASSERT_EQ(::chown(manifest.c_str(), nobody, nobody), 0);
  auto plain = Hull({"run", manifest});
  EXPECT_EQ(plain.code, 2);
  EXPECT_NE(plain.err.find("needs root, or --rootless"), std::string::npos) << plain.err;
  auto r = Hull({"run", "--rootless", manifest});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: cgroup limits skipped"), std::string::npos) << r.err;
  EXPECT_NE(AwaitOutput("mine", "ready").find("uid=0"), std::string::npos);
  std::string status = Slurp("/proc/" + std::to_string(WorkloadPid("mine")) + "/status");
  EXPECT_NE(status.find("Uid:\t65534\t65534\t65534\t65534"), std::string::npos) << status;
  Json j = Inspect("mine");
  EXPECT_EQ(j["own_namespaces"], 7);
  EXPECT_EQ(j["rootless"]["uid"], nobody);
  EXPECT_EQ(j["warnings"].size(), 1u) << j.dump();
  EXPECT_EQ(Hull({"exec", "mine", "/bin/sh", "-c", "exit $(id -u)"}).code, 0);
  // Bridge networking needs the host's CAP_NET_ADMIN: refused, naming the field.
  auto bridge = Hull({"run", "--rootless", Manifest("mine-br", {"/bin/true"}, {{"network", "bridge"}})});
  EXPECT_EQ(bridge.code, 2);
  EXPECT_NE(bridge.err.find("network: \"bridge\" needs root"), std::string::npos) << bridge.err;
  EXPECT_EQ(Hull({"kill", "mine"}).code, 0);
  run_as_ = -1;
}

// Bridge networking, entirely inside a network namespace this fixture makes: a holder process
// unshares one and waits; every hull call joins it (HullTest::Hull), so hull0, the veths, the
// nft table and the iptables rule exist only there and die with it. Traffic stays on hull0.
class BridgeTest : public HullTest {
 protected:
  void SetUp() override {
    HullTest::SetUp();
    int ready[2], hold[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(hold), 0);
    holder_ = ::fork();
    if (holder_ == 0) {
      ::close(ready[0]);
      ::close(hold[1]);
      if (::unshare(CLONE_NEWNET) != 0) _exit(1);
      ssize_t w = ::write(ready[1], "1", 1);
      (void)w;
      char c;
      while (::read(hold[0], &c, 1) > 0) {
      }
      _exit(0);
    }
    ::close(ready[1]);
    ::close(hold[0]);
    hold_fd_ = hold[1];
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    netns_fd_ = ::open(("/proc/" + std::to_string(holder_) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(netns_fd_, 0);
    ASSERT_EQ(InNetns({"ip", "link", "set", "lo", "up"}).code, 0);
  }
  void TearDown() override {
    HullTest::TearDown();
    for (pid_t p : helpers_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
    if (netns_fd_ >= 0) ::close(netns_fd_);
    if (hold_fd_ >= 0) ::close(hold_fd_);
    if (holder_ > 0) ::waitpid(holder_, nullptr, 0);
  }

  // Runs a host tool (ip, nft, iptables, busybox) inside the test's network namespace.
  Outcome InNetns(std::vector<std::string> args, bool background = false) {
    std::string out_path = dir_ + "/netns.out", err_path = dir_ + "/netns.err";
    pid_t pid = ::fork();
    if (pid == 0) {
      if (::setns(netns_fd_, CLONE_NEWNET) != 0) _exit(125);
      std::FILE* o = std::freopen(background ? "/dev/null" : out_path.c_str(), "w", stdout);
      std::FILE* e = std::freopen(background ? "/dev/null" : err_path.c_str(), "w", stderr);
      (void)o;
      (void)e;
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      _exit(127);
    }
    if (background) {
      helpers_.push_back(pid);
      return {0, "", ""};
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(out_path), Slurp(err_path)};
  }

  // The hull host veths left in the test namespace.
  int HullVeths() {
    std::istringstream links(InNetns({"ip", "-o", "link"}).out);
    int n = 0;
    for (std::string line; std::getline(links, line);) n += line.find(": hullv") != std::string::npos;
    return n;
  }

  int Leases() {
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(LeaseDir() + "/leases", ec)) n += e.is_regular_file() ? 1 : 0;
    return n;
  }

  // hull0's leases in the test's network namespace: $HULL_LEASE_ROOT/net-<its inode>/hull0.
  std::string LeaseDir(const std::string& bridge = "hull0") {
    struct stat st;
    EXPECT_EQ(::fstat(netns_fd_, &st), 0);
    return dir_ + "/run/net-" + std::to_string(st.st_ino) + "/" + bridge;
  }

  pid_t holder_ = -1;
  int hold_fd_ = -1;
  std::vector<pid_t> helpers_;
};

TEST_F(BridgeTest, TwoContainersReachEachOtherAndTheBridgeNoneReachesNothing) {
  fs::create_directories(root_ + "/www");
  std::ofstream(root_ + "/www/index.html") << "from-server\n";
  auto srv = Hull({"run", Manifest("srv", {"/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"},
                                   {{"network", "bridge"}, {"bridge", {{"ip", "10.88.0.10"}}}})});
  ASSERT_EQ(srv.code, 0) << srv.err;
  EXPECT_EQ(srv.err, "") << "nft and iptables are installed: no warning";
  Json j = Inspect("srv");
  EXPECT_EQ(j["bridge"]["ip"], "10.88.0.10");
  EXPECT_EQ(j["bridge"]["host_veth"], "hullv0a58000a");
  EXPECT_TRUE(fs::exists(LeaseDir() + "/leases/10.88.0.10"));
  EXPECT_EQ(Slurp(LeaseDir() + "/leases/10.88.0.10").rfind("srv " + std::to_string(j["pid"].get<int>()) + " ", 0), 0u);
  // The bridge's own address serves too: a server in the test namespace on 10.88.0.1.
  fs::create_directories(dir_ + "/hostwww");
  std::ofstream(dir_ + "/hostwww/index.html") << "from-bridge\n";
  InNetns({"busybox", "httpd", "-f", "-p", "10.88.0.1:8081", "-h", dir_ + "/hostwww"}, true);

  // The client is rootless too, with a smaller mtu; it retries while the servers come up.
  // (Debian's busybox wget crashes with -T: none given.)
  const std::string fetch = "for i in $(seq 100); do wget -q -O - http://%s/index.html && break; sleep 0.05; done; ";
  auto with = [&](const char* target) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), fetch.c_str(), target);
    return std::string(buf);
  };
  auto cli = Hull({"run", "--rootless",
                   Manifest("cli", {"/bin/sh", "-c",
                                    "ip -o addr show eth0; ip route; ip link show eth0; " + with("10.88.0.10:8080") +
                                        with("10.88.0.1:8081") + "echo done"},
                            {{"network", "bridge"}, {"bridge", {{"mtu", 1400}}}})});
  ASSERT_EQ(cli.code, 0) << cli.err;
  Json c = AwaitExit("cli", 20s);
  std::string out = Slurp(state_ + "/containers/cli/stdout.log");
  EXPECT_NE(out.find("inet 10.88.0.2/24"), std::string::npos) << out;  // the first free, from .2
  EXPECT_NE(out.find("default via 10.88.0.1 dev eth0"), std::string::npos) << out;
  EXPECT_NE(out.find("mtu 1400"), std::string::npos) << out;
  EXPECT_NE(out.find("from-server"), std::string::npos) << out;
  EXPECT_NE(out.find("from-bridge"), std::string::npos) << out;
  EXPECT_NE(out.find("done"), std::string::npos) << out;
  // Its exit, once seen (inspect did), released its address.
  EXPECT_FALSE(fs::exists(LeaseDir() + "/leases/10.88.0.2"));

  // network none: only lo, no route to the bridge.
  ASSERT_EQ(Hull({"run", Manifest("lonely", {"/bin/sh", "-c",
                                            "echo GET / | nc -w 2 10.88.0.1 8081; echo rc=$?"})})
                .code,
            0);
  AwaitExit("lonely");
  out = Slurp(state_ + "/containers/lonely/stdout.log") + Slurp(state_ + "/containers/lonely/stderr.log");
  EXPECT_NE(out.find("rc=1"), std::string::npos) << out;
  EXPECT_NE(out.find("unreachable"), std::string::npos) << out;
  EXPECT_EQ(out.find("from-bridge"), std::string::npos) << out;

  // NAT, idempotent after two runs: one masquerade rule, one FORWARD rule, forwarding on.
  auto nft = InNetns({"nft", "list", "table", "ip", "hull"});
  EXPECT_EQ(nft.code, 0) << nft.err;
  size_t first = nft.out.find("ip saddr 10.88.0.0/24 ip daddr != 10.88.0.0/24 masquerade");
  EXPECT_NE(first, std::string::npos) << nft.out;
  EXPECT_EQ(nft.out.find("masquerade", first + 60), std::string::npos) << nft.out;
  auto ipt = InNetns({"iptables", "-S", "FORWARD"});
  EXPECT_EQ(ipt.out.find("-A FORWARD -i hull0 -j ACCEPT"), ipt.out.rfind("-A FORWARD -i hull0 -j ACCEPT")) << ipt.out;
  EXPECT_NE(ipt.out.find("-A FORWARD -i hull0 -j ACCEPT"), std::string::npos) << ipt.out;
  EXPECT_EQ(InNetns({"cat", "/proc/sys/net/ipv4/ip_forward"}).out, "1\n");

  // stop releases the lease and the veth.
  ASSERT_EQ(Hull({"stop", "srv"}).code, 0);
  EXPECT_EQ(Leases(), 0);
  EXPECT_EQ(HullVeths(), 0);
}

TEST_F(BridgeTest, AStaticIpLeasedByAnotherContainerIsRefused) {
  Json net = {{"network", "bridge"}, {"bridge", {{"ip", "10.88.0.50"}}}};
  ASSERT_EQ(Hull({"run", Manifest("first", {"/bin/sleep", "600"}, net)}).code, 0);
  auto second = Hull({"run", Manifest("second", {"/bin/sleep", "600"}, net)});
  EXPECT_EQ(second.code, 2);
  EXPECT_NE(second.err.find("bridge.ip: 10.88.0.50 is leased by container first"), std::string::npos) << second.err;
  EXPECT_EQ(Slurp(LeaseDir() + "/leases/10.88.0.50").rfind("first ", 0), 0u) << "the holder's lease is untouched";
  // A lease whose owner died unseen (SIGKILL from outside hull) is stale and reclaimed.
  const int first_pid = Inspect("first")["pid"].get<int>();
  ASSERT_EQ(::kill(first_pid, SIGKILL), 0);
  auto gone = [&] {  // no such pid, or a zombie nobody reaped yet
    std::string stat = Slurp("/proc/" + std::to_string(first_pid) + "/stat");
    return stat.empty() || stat.find(") Z ") != std::string::npos;
  };
  auto until = std::chrono::steady_clock::now() + 5s;
  while (!gone() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(gone());
  second = Hull({"run", dir_ + "/second.json"});
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(Slurp(LeaseDir() + "/leases/10.88.0.50").rfind("second ", 0), 0u);
  EXPECT_EQ(Inspect("second")["bridge"]["ip"], "10.88.0.50");
  // Recording first's exit now (ps) must leave second's lease and same-named veth alone.
  EXPECT_EQ(Hull({"ps", "-a"}).code, 0);
  EXPECT_EQ(Inspect("first")["status"], "exited");
  EXPECT_EQ(Slurp(LeaseDir() + "/leases/10.88.0.50").rfind("second ", 0), 0u);
  EXPECT_EQ(HullVeths(), 1);
  auto eth0 = Hull({"exec", "second", "/bin/sh", "-c", "ip -o addr show eth0"});
  EXPECT_NE(eth0.out.find("10.88.0.50/24"), std::string::npos) << eth0.out << eth0.err;
  ASSERT_EQ(Hull({"kill", "second"}).code, 0);
  EXPECT_EQ(Leases(), 0);
}

// Two state directories (sudo and sudo -E, the agent's) on one bridge: the leases are the
// namespace's, so the second hull takes the next address and leaves the first's veth alone.
TEST_F(BridgeTest, TwoStateDirectoriesShareOneSetOfLeases) {
  Json net = {{"network", "bridge"}};
  ASSERT_EQ(Hull({"run", Manifest("a", {"/bin/sleep", "600"}, net)}).code, 0);
  const std::string first_state = state_;
  state_ = dir_ + "/state2";
  auto b = Hull({"run", Manifest("b", {"/bin/sleep", "600"}, net)});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(Inspect("b")["bridge"]["ip"], "10.88.0.3");
  EXPECT_EQ(HullVeths(), 2) << InNetns({"ip", "-o", "link"}).out;
  EXPECT_EQ(Leases(), 2);
  // a is still on the bridge: its eth0 (which dies with its host end) is there, addressed.
  state_ = first_state;
  auto eth0 = Hull({"exec", "a", "/bin/sh", "-c", "ip -o addr show eth0"});
  EXPECT_NE(eth0.out.find("10.88.0.2/24"), std::string::npos) << eth0.out << eth0.err;
  ASSERT_EQ(Hull({"kill", "a"}).code, 0);
  state_ = dir_ + "/state2";
  ASSERT_EQ(Hull({"kill", "b"}).code, 0);
  EXPECT_EQ(Leases(), 0);
  EXPECT_EQ(HullVeths(), 0);
  state_ = first_state;
}

// bridge.name of a link that is not a bridge (the uplink, say): refused, and the link gets
// neither the gateway address nor a FORWARD rule.
TEST_F(BridgeTest, ALinkThatIsNotABridgeIsRefusedAndLeftAlone) {
  ASSERT_EQ(InNetns({"ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"}).code, 0);
  auto r = Hull({"run", Manifest("nb", {"/bin/true"}, {{"network", "bridge"}, {"bridge", {{"name", "uplink0"}}}})});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bridge.name: uplink0 exists and is not a bridge (veth)"), std::string::npos) << r.err;
  EXPECT_EQ(InNetns({"ip", "-o", "addr", "show", "uplink0"}).out.find("10.88.0.1"), std::string::npos);
  EXPECT_NE(InNetns({"iptables", "-C", "FORWARD", "-i", "uplink0", "-j", "ACCEPT"}).code, 0);
  EXPECT_EQ(Leases(), 0);
  EXPECT_EQ(HullVeths(), 0);
}

// `hull run` SIGKILLed at any moment of a bridge start: a PID 1 that outlives it is recorded
// (state.json) and owns its address, so no later run takes the address or deletes its veth.
// Each round kills hull a little later after its clone (the kill point moves across the start).
TEST_F(BridgeTest, AHullRunKilledMidStartLeavesNoUnrecordedContainer) {
  const std::string manifest = Manifest("victim", {"/bin/sleep", "600"}, {{"network", "bridge"}});
  auto stat_of = [](pid_t p) { return Slurp("/proc/" + std::to_string(p) + "/stat"); };
  // hull's child in a PID namespace of its own: the container's PID 1 (not nft or iptables).
  const std::string our_pidns = fs::read_symlink("/proc/self/ns/pid").string();
  auto init_of = [&](pid_t p) {
    std::istringstream kids(Slurp("/proc/" + std::to_string(p) + "/task/" + std::to_string(p) + "/children"));
    for (pid_t c = 0; kids >> c;) {
      std::error_code ec;
      auto ns = fs::read_symlink("/proc/" + std::to_string(c) + "/ns/pid", ec);
      if (!ec && ns.string() != our_pidns) return c;
    }
    return 0;
  };
  auto first_child = [](pid_t p) {
    std::istringstream kids(Slurp("/proc/" + std::to_string(p) + "/task/" + std::to_string(p) + "/children"));
    pid_t c = 0;
    kids >> c;
    return c;
  };
  int survived = 0;
  for (int round = 0; round < 30; ++round) {
    std::string out, err;
    pid_t hull = SpawnHull({"run", manifest}, &out, &err);
    pid_t init = 0;
    auto until = std::chrono::steady_clock::now() + 10s;
    while ((init = init_of(hull)) == 0 && !stat_of(hull).empty() && stat_of(hull).find(") Z ") == std::string::npos &&
           std::chrono::steady_clock::now() < until) {
    }
    std::this_thread::sleep_for(std::chrono::microseconds(300 * round));  // the kill point
    ::kill(hull, SIGKILL);
    ::waitpid(hull, nullptr, 0);
    if (init == 0) continue;
    // PID 1 either dies at the closed gate or runs its workload: wait for one of the two.
    until = std::chrono::steady_clock::now() + 10s;
    auto gone = [&] {
      std::string st = stat_of(init);
      return st.empty() || st.find(") Z ") != std::string::npos;
    };
    while (!gone() && first_child(init) == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    if (!gone()) {
      ++survived;
      Json s = Json::parse(Slurp(state_ + "/containers/victim/state.json"), nullptr, false);
      EXPECT_TRUE(s.is_object() && s.value("pid", 0) == init) << "round " << round << ": PID 1 " << init
                                                               << " runs unrecorded: " << s.dump();
      const std::string ip = s.is_object() ? s.value("ip", "") : "";
      EXPECT_EQ(Slurp(LeaseDir() + "/leases/" + (ip.empty() ? "10.88.0.2" : ip)).rfind("victim " + std::to_string(init) + " ", 0), 0u)
          << "round " << round << ": the lease does not name PID 1 " << init;
      if (!s.is_object()) ::kill(init, SIGKILL);
    }
    Hull({"kill", "victim"});
  }
  EXPECT_GT(survived, 0) << "no round killed hull after the gate";
  // What the killed runs left is stale (their owners are dead): the next run reclaims it, and
  // after it nothing is left.
  auto r = Hull({"run", manifest});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Inspect("victim")["bridge"]["ip"], "10.88.0.2");
  ASSERT_EQ(Hull({"kill", "victim"}).code, 0);
  EXPECT_EQ(Leases(), 0);
  EXPECT_EQ(HullVeths(), 0) << InNetns({"ip", "-o", "link"}).out;
}

TEST_F(BridgeTest, AHundredShortRunsLeakNoLeaseAndNoVeth) {
  // Names of their own: no run waits for the previous exit. Nobody records those exits in
  // between, so each run finds the addresses of dead containers stale and reclaims them.
  for (int i = 0; i < 100; ++i) {
    auto r = Hull({"run", Manifest("short-" + std::to_string(i), {"/bin/true"}, {{"network", "bridge"}})});
    ASSERT_EQ(r.code, 0) << "run " << i << ": " << r.err;
  }
  EXPECT_LE(Leases(), 100);
  // ps sees the exits and releases what is left (the last ones may still be exiting).
  auto until = std::chrono::steady_clock::now() + 10s;
  do {
    EXPECT_EQ(Hull({"ps", "-a"}).code, 0);
  } while (Leases() != 0 && std::chrono::steady_clock::now() < until);
  EXPECT_EQ(Leases(), 0);
  // The kernel removes a veth with its namespace, asynchronously: wait with a deadline.
  until = std::chrono::steady_clock::now() + 10s;
  while (HullVeths() != 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(HullVeths(), 0) << InNetns({"ip", "-o", "link"}).out;
  EXPECT_NE(InNetns({"ip", "-o", "link"}).out.find("hull0"), std::string::npos);
}

}  // namespace
}  // namespace mentat
