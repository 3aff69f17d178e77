// A member cut off from the others by the network, with real processes in network namespaces
// this test makes: three namespaces on a bridge (10.77.X.1-3), one mentat-server in each with
// its peer port on its namespace's address (peer TLS with a CA made here, as members on three
// machines would) and its API on that namespace's 127.0.0.1. Client threads enter a member's
// namespace (setns) to talk to it. The leader is partitioned from the two others (iptables in
// its namespace): the two elect another leader and take writes; the cut-off member answers 503,
// never a write it did not commit; healed, it catches up. The same under a client load: its
// history must be linearizable and no member's memory may balloon. A follower cut off answers
// 503 to writes and reads (but ?consistency=local from what it has), and healed it catches up
// without unseating the leader (PreVote).
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "e2e/harness.h"
#include "e2e/kv_ops.h"
#include "store/raft/testing/kv_model.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;

// No member should come near this (each stays under 100 MB in steady state, and peaked at a
// few hundred while one caught up after the heal).
constexpr long kMemoryLimitKb = 1536L * 1024;

// The highest resident size of each process, sampled every 100 ms while it lives.
class PeakMemory {
 public:
  explicit PeakMemory(std::vector<pid_t> pids) : pids_(std::move(pids)), peak_(pids_.size()) {
    thread_ = std::thread([this] {
      while (!stop_) {
        for (size_t i = 0; i < pids_.size(); ++i) peak_[i] = std::max<long>(peak_[i], RssKb(pids_[i]));
        std::this_thread::sleep_for(100ms);
      }
    });
  }
  ~PeakMemory() {
    stop_ = true;
    thread_.join();
  }
  long Kb(size_t i) const { return peak_[i]; }

 private:
  static long RssKb(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return 0;
  }
  std::vector<pid_t> pids_;
  std::vector<std::atomic<long>> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

bool Sh(const std::string& cmd) { return RunCommand({"/bin/sh", "-c", cmd}).exit_code == 0; }

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("partition");
    tag_ = std::to_string(getpid() % 100000);
    subnet_ = "10.77." + std::to_string(getpid() % 250);
    bridge_ = "mtb" + tag_;
    ASSERT_TRUE(Sh("ip link add " + bridge_ + " type bridge && ip addr add " + subnet_ + ".254/24 dev " + bridge_ +
                   " && ip link set " + bridge_ + " up"));
    // Bridged frames go through the host's FORWARD chain (br_netfilter), whose policy may drop.
    Sh("iptables -I FORWARD -i " + bridge_ + " -o " + bridge_ + " -j ACCEPT");
    for (int i = 1; i <= 3; ++i) {
      const std::string ns = Ns(i), host = "mth" + tag_ + std::to_string(i), inner = "mtc" + tag_ + std::to_string(i);
      ASSERT_TRUE(Sh("ip netns add " + ns + " && ip link add " + host + " type veth peer name " + inner +
                     " && ip link set " + inner + " netns " + ns + " && ip link set " + host + " master " + bridge_ +
                     " && ip link set " + host + " up && ip netns exec " + ns + " ip addr add " + Addr(i) + "/24 dev " +
                     inner + " && ip netns exec " + ns + " ip link set " + inner + " up && ip netns exec " + ns +
                     " ip link set lo up"));
    }
    std::string sans = "subjectAltName=IP:" + Addr(1) + ",IP:" + Addr(2) + ",IP:" + Addr(3);
    ASSERT_TRUE(Sh("cd " + dir_ + " && echo '" + sans + "' > ext.cnf && " +
                   "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
                   "-out ca.crt -days 2 -subj /CN=ca >/dev/null 2>&1 && "
                   "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout m.key -out m.csr "
                   "-subj /CN=m >/dev/null 2>&1 && openssl x509 -req -in m.csr -CA ca.crt -CAkey ca.key "
                   "-CAcreateserial -out m.crt -days 2 -extfile ext.cnf >/dev/null 2>&1"));
  }
  void TearDown() override {
    for (auto& p : servers_) p.reset();
    for (int i = 1; i <= 3; ++i) Sh("ip netns del " + Ns(i));
    Sh("iptables -D FORWARD -i " + bridge_ + " -o " + bridge_ + " -j ACCEPT");
    Sh("ip link del " + bridge_);
  }
  std::string Ns(int i) const { return "mtp" + tag_ + "-" + std::to_string(i); }
  std::string Addr(int i) const { return subnet_ + "." + std::to_string(i); }
  void Start(int i) {
    std::string initial;
    for (int j = 1; j <= 3; ++j) initial += (j > 1 ? "," : "") + ("n" + std::to_string(j)) + "=" + Addr(j) + ":4648";
    std::vector<std::string> argv = {"/usr/sbin/ip", "netns", "exec", Ns(i)};
    for (const auto& a : ServerArgv(4646, dir_ + "/n" + std::to_string(i),
                                    {"--name", "n" + std::to_string(i), "--peer-listen", Addr(i) + ":4648",
                                     "--initial-cluster", initial, "--peer-cert-file", dir_ + "/m.crt",
                                     "--peer-key-file", dir_ + "/m.key", "--peer-trusted-ca-file", dir_ + "/ca.crt"})) {
      argv.push_back(a);
    }
    servers_[i - 1] = std::make_unique<Process>(argv, dir_ + "/n" + std::to_string(i) + ".log");
  }
  // Moves the calling thread into member i's namespace (its 127.0.0.1 is the member's API).
  bool EnterNs(int i) const {
    int fd = ::open(("/var/run/netns/" + Ns(i)).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool in = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    return in;
  }
  // Runs `f` on a thread inside member i's namespace.
  template <typename F>
  auto InNs(int i, F f) {
    decltype(f()) out{};
    std::thread t([&] {
      if (EnterNs(i)) out = f();
    });
    t.join();
    return out;
  }
  std::vector<pid_t> Pids() const {
    std::vector<pid_t> pids;
    for (const auto& p : servers_) pids.push_back(p ? p->pid() : -1);
    return pids;
  }
  Json Status(int i) {
    return InNs(i, [] {
      httplib::Client cli("127.0.0.1", 4646);
      cli.set_connection_timeout(1, 0);
      cli.set_read_timeout(3, 0);
      auto r = cli.Get("/v1/cluster");
      return r && r->status == 200 ? Json::parse(r->body, nullptr, false) : Json();
    });
  }
  int Put(int i, const std::string& name, const std::string& value) {
    return InNs(i, [&] {
      httplib::Client cli("127.0.0.1", 4646);
      cli.set_connection_timeout(1, 0);
      cli.set_read_timeout(8, 0);
      auto r = cli.Put("/v1/services/" + name,
                       "name: " + name + "\ndriver: exec\ncount: 0\ncommand: /bin/true\nenv:\n  V: \"" + value + "\"\n",
                       "application/yaml");
      return r ? r->status : 0;
    });
  }
  std::string ValueOn(int i, const std::string& name) {
    return InNs(i, [&] {
      httplib::Client cli("127.0.0.1", 4646);
      cli.set_read_timeout(8, 0);
      auto r = cli.Get("/v1/services/" + name);
      if (!r || r->status != 200) return std::string("<") + (r ? std::to_string(r->status) : "none") + ">";
      for (const auto& e : Json::parse(r->body, nullptr, false)["spec"].value("env", Json::array())) {
        if (e.value("name", "") == "V") return e.value("value", std::string());
      }
      return std::string();
    });
  }
  // The leader members `among` agree on (as a member number), once they do; 0 after 30 s.
  int AgreedLeader(const std::set<int>& among) {
    int leader = 0;
    WaitFor([&] {
      std::set<std::string> named;
      for (int i : among) {
        Json s = Status(i);
        named.insert(s.is_object() ? s.value("leader", "") : "");
      }
      if (named.size() != 1 || named.begin()->empty()) return false;
      leader = std::stoi(named.begin()->substr(1));
      return among.count(leader) > 0;
    }, 30s);
    return leader;
  }
  void Cut(int i, bool cut) {
    for (int j = 1; j <= 3; ++j) {
      if (j == i) continue;
      const std::string op = cut ? "-A" : "-D";
      ASSERT_TRUE(Sh("ip netns exec " + Ns(i) + " iptables " + op + " INPUT -s " + Addr(j) + " -j DROP && ip netns exec " +
                     Ns(i) + " iptables " + op + " OUTPUT -d " + Addr(j) + " -j DROP"));
    }
  }

  void CutOffTheLeader(int clients_per_member);

  std::string dir_, tag_, subnet_, bridge_;
  std::unique_ptr<Process> servers_[3];
};

// The leader cut off and healed; with `clients`, a load from inside each namespace all along,
// whose history must be linearizable.
void PartitionTest::CutOffTheLeader(int clients_per_member) {
  for (int i = 1; i <= 3; ++i) Start(i);
  const int leader = AgreedLeader({1, 2, 3});
  ASSERT_NE(leader, 0) << servers_[0]->Log();
  ASSERT_EQ(Put(leader, "before", "b"), 201);
  // A load all along: a client in each member's namespace, its history recorded.
  std::optional<KvLoad> load;
  if (clients_per_member > 0) {
    load.emplace(KvLoad::Options{.clients = 3 * clients_per_member, .keys = 4, .seed = 99,
                                 .api = [](int, std::mt19937&) { return 4646; },
                                 .on_start = [this](int c) { return EnterNs(c % 3 + 1); }});
  }
  auto progress = [&](int more) { return !load || load->Progress(more); };
  // Each member's memory, all along: a member coming back from a partition once made the leader
  // queue a whole append message per heartbeat it answered, and it grew to 14 GB.
  PeakMemory peak(Pids());
  EXPECT_TRUE(progress(50));

  Cut(leader, true);
  std::set<int> rest;
  for (int i = 1; i <= 3; ++i) {
    if (i != leader) rest.insert(i);
  }
  const int next = AgreedLeader(rest);
  ASSERT_NE(next, 0);
  ASSERT_NE(next, leader);
  EXPECT_EQ(Put(next, "during", "d"), 201);
  // The cut-off member cannot commit: its write is answered 503 and never appears anywhere.
  EXPECT_EQ(Put(leader, "lost", "x"), 503);
  EXPECT_EQ(ValueOn(next, "during"), "d");
  EXPECT_EQ(ValueOn(next, "lost"), "<404>");
  EXPECT_TRUE(progress(50));

  Cut(leader, false);
  EXPECT_TRUE(WaitFor([&] { return ValueOn(leader, "during") == "d"; }, 30s)) << servers_[leader - 1]->Log();
  EXPECT_EQ(ValueOn(leader, "lost"), "<404>");
  EXPECT_EQ(ValueOn(leader, "before"), "b");
  EXPECT_TRUE(progress(50));
  // The load stops before the last check, which reads through every member.
  if (load) load->Stop();
  EXPECT_EQ(Put(leader, "after", "a"), 201);
  for (int i = 1; i <= 3; ++i) {
    std::string seen;
    EXPECT_TRUE(WaitFor([&] { return (seen = ValueOn(i, "after")) == "a"; }, 30s))
        << "member " << i << " reads " << seen << "; its status: " << Status(i).dump();
  }
  for (int i = 1; i <= 3; ++i) {
    EXPECT_LT(peak.Kb(i - 1), kMemoryLimitKb) << "member " << i << " grew to " << peak.Kb(i - 1) / 1024 << " MiB";
  }
  if (!load) return;
  auto all = load->All();
  auto ops = load->Checkable();
  auto result = raft::testing::CheckLinearizable(raft::testing::KvModel(), ops);
  EXPECT_EQ(result.verdict, raft::testing::Verdict::kLinearizable)
      << raft::testing::VerdictName(result.verdict) << " on key " << result.partition << ": " << result.explanation;
  std::cout << all.size() << " operations, " << ops.size() << " checked\n";
}

TEST_F(PartitionTest, ACutOffLeaderGivesWayAndCatchesUpOnceHealed) { CutOffTheLeader(0); }

// Under a load this once failed about one run in two: after the heal, the leader queued a whole
// append message (up to 1 MB) for the returning member per heartbeat it answered, one heartbeat
// round per linearizable read, until it held 14 GB and stopped answering; and its connection to
// that member, written into during the cut, stayed open and silent for tens of seconds. Now reads
// share one heartbeat round at a time, a peer's queue is bounded, and dead connections close.
TEST_F(PartitionTest, ACutOffLeaderUnderALoadStaysLinearizable) { CutOffTheLeader(1); }

TEST_F(PartitionTest, ACutOffFollowerAnswersOnlyLocalReadsAndCatchesUpOnceHealed) {
  for (int i = 1; i <= 3; ++i) Start(i);
  const int leader = AgreedLeader({1, 2, 3});
  ASSERT_NE(leader, 0) << servers_[0]->Log();
  ASSERT_EQ(Put(leader, "before", "b"), 201);
  const int follower = leader == 3 ? 2 : 3;
  ASSERT_TRUE(WaitFor([&] { return ValueOn(follower, "before") == "b"; }, 10s));
  Cut(follower, true);
  // The two others go on without it.
  EXPECT_EQ(Put(leader, "during", "d"), 201);
  // Cut off, it neither commits a write nor answers a linearizable read...
  EXPECT_EQ(Put(follower, "lost", "x"), 503);
  EXPECT_EQ(ValueOn(follower, "during"), "<503>");
  // ...but ?consistency=local answers from what it has, which lags.
  auto local = InNs(follower, [] {
    httplib::Client cli("127.0.0.1", 4646);
    cli.set_read_timeout(3, 0);
    auto r = cli.Get("/v1/services/during?consistency=local");
    return r ? r->status : 0;
  });
  EXPECT_EQ(local, 404);
  Cut(follower, false);
  EXPECT_TRUE(WaitFor([&] { return ValueOn(follower, "during") == "d"; }, 30s)) << servers_[follower - 1]->Log();
  EXPECT_EQ(ValueOn(leader, "lost"), "<404>");
  EXPECT_EQ(AgreedLeader({1, 2, 3}), leader);  // PreVote: the healed member did not unseat it
}

}  // namespace
}  // namespace mentat::e2e
