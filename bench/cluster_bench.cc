// The replicated store, measured against etcd 3.4 clusters of the same size in the same run. All
// on 127.0.0.1, all durable (fsync on commit, every member), driven over HTTP/JSON (mentat's
// API, etcd's v3 JSON gateway) with wrk, ~1 KiB objects, every write a new key:
//   - three mentat members against three etcd members: writes/s, p50/p99 latency and the
//     members' CPU per 1,000 writes with 1, 16 and 64 clients, all writing to the leader; and
//     with 64 clients on a follower (where a client given `--server a,b,c` lands when `a` is
//     one: its writes go on to the leader inside Raft, or inside etcd)
//   - a one-voter mentat cluster (Raft with a single member) against one etcd member, the same
//   - failover: from kill -9 of the leader to the next write acknowledged by one of the other
//     two, which a client tries in turn; the killed member restarted on its disk and rejoined
//     between runs, so each run starts with three
//
//   bazel run //bench:cluster_bench -- [seconds per write run, default 3] [failover runs, 20]
//   (`-- 1 3` is a quick check that everything works.)
#include <httplib.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "bench/store_load.h"
#include "e2e/harness.h"

using namespace mentat::e2e;
using namespace mentat::bench;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A store cluster under test, of one or three members on 127.0.0.1. Members are started, killed
// and restarted one by one, each on its own ports and disk for the whole run.
class StoreCluster {
 public:
  StoreCluster(std::string dir, size_t members) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);  // the members' logs go here
    for (size_t i = 0; i < members; ++i) {
      members_.push_back({"n" + std::to_string(i + 1), FreePort(), FreePort(), nullptr});
    }
  }
  virtual ~StoreCluster() = default;
  virtual StoreKind kind() const = 0;
  virtual std::string label() const = 0;

  size_t size() const { return members_.size(); }
  int api(size_t i) const { return members_[i].api; }
  bool running(size_t i) const { return members_[i].process != nullptr; }
  std::vector<pid_t> pids() const {
    std::vector<pid_t> out;
    for (const auto& m : members_) {
      if (m.process) out.push_back(m.process->pid());
    }
    return out;
  }

  // Starts member i (on its disk, when it ran before) and waits until its API answers.
  bool Start(size_t i) {
    Spawn(i);
    return AwaitAnswer(i);
  }
  // All at once: an etcd member answers only once it has joined a quorum.
  bool StartAll() {
    for (size_t i = 0; i < size(); ++i) Spawn(i);
    for (size_t i = 0; i < size(); ++i) {
      if (!AwaitAnswer(i)) return false;
    }
    return true;
  }
  // kill -9, and reaped.
  void Kill(size_t i) {
    members_[i].process->Signal(SIGKILL);
    members_[i].process->Wait(10s);
    members_[i].process.reset();
  }
  void StopAll() {
    for (auto& m : members_) {
      if (m.process) m.process->Signal(SIGTERM);
    }
    for (auto& m : members_) {
      if (m.process) m.process->Wait(10s);
      m.process.reset();
    }
  }

  // The member every running member names as leader, once they agree on a running one; -1 when
  // they do not within `deadline`.
  int AgreedLeader(std::chrono::milliseconds deadline) {
    int leader = -1;
    WaitFor(
        [&] {
          std::set<int> named;
          for (size_t i = 0; i < size(); ++i) {
            if (running(i)) named.insert(LeaderNamedBy(i));
          }
          leader = named.size() == 1 && *named.begin() >= 0 && running(*named.begin())
                       ? *named.begin()
                       : -1;
          return leader >= 0;
        },
        deadline);
    return leader;
  }

 protected:
  struct Member {
    std::string name;
    int api = 0;
    int peer = 0;
    std::unique_ptr<Process> process;
  };
  void Spawn(size_t i) {
    members_[i].process =
        std::make_unique<Process>(Argv(i), dir_ + "/" + members_[i].name + ".log");
  }
  bool AwaitAnswer(size_t i) {
    if (WaitFor([&] { return Healthy(i); }, 30s)) return true;
    fprintf(stderr, "%s %s did not answer:\n%s\n", label().c_str(), members_[i].name.c_str(),
            members_[i].process->Log().c_str());
    return false;
  }
  virtual std::vector<std::string> Argv(size_t i) = 0;
  virtual bool Healthy(size_t i) = 0;
  // The leader as member i names it, by index; -1 when it names none or cannot be asked.
  virtual int LeaderNamedBy(size_t i) = 0;

  std::string dir_;
  std::vector<Member> members_;
};

// mentat-server with --name, --peer-listen and --initial-cluster: a Raft member even when alone.
class MentatCluster : public StoreCluster {
 public:
  using StoreCluster::StoreCluster;
  StoreKind kind() const override { return StoreKind::kMentat; }
  std::string label() const override { return "mentat"; }

 protected:
  std::vector<std::string> Argv(size_t i) override {
    std::string initial;
    for (const auto& m : members_) {
      initial += (initial.empty() ? "" : ",") + m.name + "=127.0.0.1:" + std::to_string(m.peer);
    }
    const Member& m = members_[i];
    return ServerArgv(
        m.api, dir_ + "/" + m.name,
        {"--name", m.name, "--peer-listen", "127.0.0.1:" + std::to_string(m.peer),
         "--initial-cluster", initial, "--log-level", "warn", "--default-policy", "restricted"});
  }
  bool Healthy(size_t i) override { return HttpGet(api(i), "/healthz").first == 200; }
  int LeaderNamedBy(size_t i) override {
    auto [code, body] = HttpGet(api(i), "/v1/cluster");
    if (code != 200) return -1;
    std::string leader = Json::parse(body, nullptr, false).value("leader", "");
    for (size_t j = 0; j < size(); ++j) {
      if (members_[j].name == leader) return static_cast<int>(j);
    }
    return -1;
  }
};

// /usr/bin/etcd members with their defaults.
class EtcdCluster : public StoreCluster {
 public:
  using StoreCluster::StoreCluster;
  StoreKind kind() const override { return StoreKind::kEtcd; }
  std::string label() const override { return "etcd"; }

 protected:
  EtcdMember Describe(const Member& m) const {
    return {m.name, m.api, m.peer, dir_ + "/" + m.name};
  }
  std::vector<std::string> Argv(size_t i) override {
    std::vector<EtcdMember> all;
    for (const auto& m : members_) all.push_back(Describe(m));
    return EtcdArgv(all[i], all);
  }
  // /health says "true" only once the member knows a leader; the API answers before.
  bool Healthy(size_t i) override { return Status(i).is_object(); }
  Json Status(size_t i) {
    httplib::Client c("127.0.0.1", api(i));
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(2, 0);
    auto r = c.Post("/v3/maintenance/status", "{}", "application/json");
    if (!r || r->status != 200) return Json();
    Json s = Json::parse(r->body, nullptr, false);
    return s.is_object() && s.contains("header") ? s : Json();
  }
  int LeaderNamedBy(size_t i) override {
    Json s = Status(i);
    if (!s.is_object()) return -1;
    // Member ids are etcd's, learnt as each member answers (they stay the same across restarts).
    ids_[s["header"].value("member_id", "")] = static_cast<int>(i);
    auto it = ids_.find(s.value("leader", "0"));
    return it == ids_.end() ? -1 : it->second;
  }

 private:
  std::map<std::string, int> ids_;
};

void PrintRow(const std::string& label, double mentat, double etcd, const char* format) {
  char m[32], e[32];
  snprintf(m, sizeof(m), format, mentat);
  snprintf(e, sizeof(e), format, etcd);
  printf("%-38s %12s %12s %7.2fx\n", label.c_str(), m, e, etcd > 0 ? mentat / etcd : 0.0);
}

void PrintWrites(const std::string& label, const WriteResult& m, const WriteResult& e) {
  PrintRow(label, m.per_sec, e.per_sec, "%.0f");
  PrintRow("  p50 ms", m.p50_ms, e.p50_ms, "%.2f");
  PrintRow("  p99 ms", m.p99_ms, e.p99_ms, "%.2f");
  PrintRow("  CPU ms/1000 writes (all members)", m.cpu_ms_per_1000, e.cpu_ms_per_1000, "%.1f");
}

// One write run with `clients` connections on member `member` of each cluster, mentat then etcd.
std::pair<WriteResult, WriteResult> WritesOn(StoreCluster& mentat, size_t m_member,
                                             StoreCluster& etcd, size_t e_member, int clients,
                                             double seconds, const std::string& prefix,
                                             const std::string& dir) {
  return {
      WrkWrites(mentat.kind(), mentat.api(m_member), mentat.pids(), clients, seconds, prefix, dir),
      WrkWrites(etcd.kind(), etcd.api(e_member), etcd.pids(), clients, seconds, prefix, dir)};
}

// The write runs against two clusters of the same size, all to the leader; with three members
// also 64 clients on a follower. False when a cluster had no leader.
bool CompareWrites(StoreCluster& mentat, StoreCluster& etcd, double seconds, const std::string& tag,
                   const std::string& dir) {
  int ml = mentat.AgreedLeader(30s), el = etcd.AgreedLeader(30s);
  if (ml < 0 || el < 0) {
    fprintf(stderr, "no agreed leader (mentat %d, etcd %d)\n", ml, el);
    return false;
  }
  for (int clients : {1, 16, 64}) {
    auto [m, e] =
        WritesOn(mentat, ml, etcd, el, clients, seconds, tag + "l" + std::to_string(clients), dir);
    PrintWrites("writes/s, " + std::to_string(clients) + " clients", m, e);
  }
  if (mentat.size() > 1) {
    auto [m, e] = WritesOn(mentat, (ml + 1) % mentat.size(), etcd, (el + 1) % etcd.size(), 64,
                           seconds, tag + "f64", dir);
    PrintWrites("writes/s, 64 clients on a follower", m, e);
  }
  fflush(stdout);
  return true;
}

// How long a client gives each write before it tries the next member.
struct RetryingClient {
  const char* label;
  std::chrono::milliseconds per_try;
};
// Patient: waits for the member's answer, as `mt` does (a member that cannot commit answers 503
// after its proposal timeout, 5 s for mentat, 7 s for etcd). Impatient: gives each write 100 ms,
// well above a healthy one here, then moves on; so it measures when the store can commit again,
// to within ~110 ms.
const RetryingClient kPatient{"client waiting for each answer", 30s};
const RetryingClient kImpatient{"client giving each try 100 ms", 100ms};

// From `killed` until a write is acknowledged by one of the members other than `dead`, which
// `client` tries in turn, starting after the dead one. In ms; -1 when none within 30 s.
double NextAcknowledgedWrite(StoreCluster& c, size_t dead, const RetryingClient& client,
                             const std::string& key, Clock::time_point killed) {
  std::vector<std::unique_ptr<httplib::Client>> members;
  for (size_t i = 0; i < c.size(); ++i) {
    members.push_back(std::make_unique<httplib::Client>("127.0.0.1", c.api(i)));
    members.back()->set_connection_timeout(1, 0);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(client.per_try).count();
    members.back()->set_read_timeout(us / 1000000, us % 1000000);
    members.back()->set_tcp_nodelay(true);
  }
  size_t next = dead;
  bool acked = WaitFor(
      [&] {
        do {
          next = (next + 1) % c.size();
        } while (next == dead);
        return PutProfile(c.kind(), *members[next], key, /*quiet=*/true);
      },
      30s, 10ms);
  return acked ? Ms(Clock::now() - killed) : -1;
}

// One failover: the agreed leader killed with SIGKILL; from then, two clients (kPatient,
// kImpatient) each write a key of their own until a member acknowledges it. Their times in ms;
// then the killed member is restarted and waited for until a write through it is acknowledged,
// so the next run starts with every member. Empty when a step failed.
std::vector<double> Failover(StoreCluster& c, int run) {
  const int leader = c.AgreedLeader(30s);
  if (leader < 0) {
    fprintf(stderr, "%s: no agreed leader before run %d\n", c.label().c_str(), run);
    return {};
  }
  const std::string key = "failover-" + std::to_string(run);
  const auto killed = Clock::now();
  c.Kill(leader);
  double patient = -1, impatient = -1;
  std::thread other(
      [&] { impatient = NextAcknowledgedWrite(c, leader, kImpatient, key + "-i", killed); });
  patient = NextAcknowledgedWrite(c, leader, kPatient, key + "-p", killed);
  other.join();
  if (patient < 0 || impatient < 0) {
    fprintf(stderr, "%s: no write acknowledged within 30 s of the kill (run %d)\n",
            c.label().c_str(), run);
    return {};
  }
  httplib::Client rejoined("127.0.0.1", c.api(leader));
  rejoined.set_read_timeout(10, 0);
  if (!c.Start(leader) ||
      !WaitFor([&] { return PutProfile(c.kind(), rejoined, key + "-rejoined", true); }, 30s)) {
    fprintf(stderr, "%s: the restarted member took no write (run %d)\n", c.label().c_str(), run);
    return {};
  }
  return {patient, impatient};
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3;
  const int failovers = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string dir = TempDir("cluster-bench");
  auto uptime = RunCommand({"/usr/bin/uptime"});
  printf(
      "cluster benchmark: ~1 KiB objects, fsync on commit on every member, HTTP/JSON on "
      "127.0.0.1,\n"
      "wrk, %.0fs per run, writes to the leader unless said; uptime at start:%s\n",
      seconds, uptime.out.c_str());
  printf("%-38s %12s %12s %8s\n", "", "mentat", "etcd 3.4", "ratio");

  {
    printf("three members\n");
    MentatCluster mentat(dir + "/m3", 3);
    EtcdCluster etcd(dir + "/e3", 3);
    if (!mentat.StartAll() || !etcd.StartAll()) return 1;
    if (!CompareWrites(mentat, etcd, seconds, "c3", dir)) return 1;
    mentat.StopAll();
    etcd.StopAll();
  }
  {
    printf("one voter (mentat: Raft with one member)\n");
    MentatCluster mentat(dir + "/m1", 1);
    EtcdCluster etcd(dir + "/e1", 1);
    if (!mentat.StartAll() || !etcd.StartAll()) return 1;
    if (!CompareWrites(mentat, etcd, seconds, "c1", dir)) return 1;
    mentat.StopAll();
    etcd.StopAll();
  }
  {
    // Fresh clusters: a member restarted after the write runs would first replay their log.
    MentatCluster mentat(dir + "/mf", 3);
    EtcdCluster etcd(dir + "/ef", 3);
    if (!mentat.StartAll() || !etcd.StartAll()) return 1;
    // [client][store]: each kill is measured by both clients at once.
    std::vector<double> runs[2][2];
    for (int run = 0; run < failovers; ++run) {
      auto m = Failover(mentat, run), e = Failover(etcd, run);
      if (m.empty() || e.empty()) return 1;
      for (int client : {0, 1}) {
        runs[client][0].push_back(m[client]);
        runs[client][1].push_back(e[client]);
      }
    }
    printf("failover, kill -9 of the leader -> next acknowledged write, %d runs\n", failovers);
    for (int client : {0, 1}) {
      const auto& [m, e] = runs[client];
      printf("%s\n", client == 0 ? kPatient.label : kImpatient.label);
      PrintRow("  p50 ms", Percentile(m, 0.5), Percentile(e, 0.5), "%.0f");
      PrintRow("  max ms", Percentile(m, 1.0), Percentile(e, 1.0), "%.0f");
      printf("  each run, ms: mentat");
      for (double ms : m) printf(" %.0f", ms);
      printf("\n                etcd  ");
      for (double ms : e) printf(" %.0f", ms);
      printf("\n");
    }
    mentat.StopAll();
    etcd.StopAll();
  }
  uptime = RunCommand({"/usr/bin/uptime"});
  printf(
      "\n(targets: three members, writes/s at 64 clients >= 1.5x etcd; one voter, writes/s at 64\n"
      " clients >= 2x etcd and p99 <= etcd's at 1, 16, 64; failover < 1.5 s)\nuptime at end:%s",
      uptime.out.c_str());
  // The members' data (hundreds of MB after the write runs); kept, with their logs, on failure.
  std::filesystem::remove_all(dir);
  return 0;
}
