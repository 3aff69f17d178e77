// hull's network "bridge" end to end (the fixture: hull_fixture.h), only inside a network
// namespace this test makes (BridgeTest): hull0, its veths and nft rules never touch the host's.
// Reachability, NAT rules made once, static addresses and their leases, two state directories,
// a link that is not a bridge, a hull run killed mid-start, a hundred short runs.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/hull_fixture.h"

namespace mentat::e2e {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

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
  auto state_is = [&](pid_t p, char state) {
    std::string st = stat_of(p);
    auto close = st.rfind(')');
    return close != std::string::npos && close + 2 < st.size() && st[close + 2] == state;
  };
  auto gone = [&](pid_t p) { return stat_of(p).empty() || state_is(p, 'Z'); };
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
  // hull stops itself at each point of a gated start in turn (HULL_TEST_STOP_AT) and is killed
  // there: before the gate opens PID 1 must die with it; once it opened, PID 1 runs and every
  // later command must see it, recorded, with its address leased to it.
  for (const std::string point : {"cloned", "attached", "recorded", "released"}) {
    SCOPED_TRACE("killed at " + point);
    env_ = {{"HULL_TEST_STOP_AT", point}};
    std::string out, err;
    pid_t hull = SpawnHull({"run", manifest}, &out, &err);
    env_.clear();
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!state_is(hull, 'T') && !gone(hull) && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_TRUE(state_is(hull, 'T')) << "hull never reached " << point << ": " << Slurp(err);
    const pid_t init = init_of(hull);
    ::kill(hull, SIGKILL);
    ::waitpid(hull, nullptr, 0);
    ASSERT_NE(init, 0) << "hull stopped at " << point << " with no PID 1 child";
    // PID 1 either dies at the closed gate or runs its workload: wait for one of the two.
    until = std::chrono::steady_clock::now() + 20s;
    while (!gone(init) && first_child(init) == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    if (point != "released") {
      EXPECT_TRUE(gone(init)) << "PID 1 " << init << " outlived a hull killed before the gate";
      if (!gone(init)) ::kill(init, SIGKILL);
    } else {
      ASSERT_FALSE(gone(init)) << "PID 1 died although hull opened the gate";
      Json s = Json::parse(Slurp(state_ + "/containers/victim/state.json"), nullptr, false);
      EXPECT_TRUE(s.is_object() && s.value("pid", 0) == init) << "PID 1 " << init << " runs unrecorded: " << s.dump();
      const std::string ip = s.is_object() ? s.value("ip", "") : "";
      EXPECT_EQ(Slurp(LeaseDir() + "/leases/" + (ip.empty() ? "10.88.0.2" : ip)).rfind("victim " + std::to_string(init) + " ", 0), 0u)
          << "the lease does not name PID 1 " << init;
      if (!s.is_object()) ::kill(init, SIGKILL);
    }
    Hull({"kill", "victim"});
  }
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
}  // namespace mentat::e2e
