// Watches across the members of a three-process control plane, under faults. A client watches
// Services through the HTTP watch API of one member while a client load writes through all of
// them; the member it watches (the leader) is kill -9'd, and later a follower is frozen
// (SIGSTOP) and thawed. Whenever its stream ends or falls silent, the client watches again, on
// the next member, from the last resourceVersion it saw (events and bookmarks alike), as an
// informer does. What it saw must be exactly what one unbroken watch of a member replays
// afterwards from the same start: in strictly increasing resourceVersions, nothing twice,
// nothing missing; every acknowledged write is among it, and its last event of each Service is
// the final list's. And with a short history window, a watch from a compacted revision is
// refused 410 Gone by every member, a recent one still served.
#include <signal.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/cluster_fixture.h"
#include "e2e/harness.h"
#include "e2e/kv_ops.h"
#include "store/raft/testing/kv_model.h"

namespace mentat::e2e {
namespace {

using raft::testing::KvOp;

// One event as the resuming client kept it: what a reference watch gives too, and the
// generation (a Service's count of spec writes) that ties it to an acknowledged put.
struct Kept {
  WatchedEvent event;
  uint64_t generation = 0;
};

// Where the client (re)opened its watch: on which member, from which revision, and the answer.
struct Opening {
  size_t member;
  int64_t from;
  int status;
};

// A client that follows Services across members: on each member in turn, from the last
// resourceVersion it saw, until Stop().
class ResumingWatch {
 public:
  ResumingWatch(std::vector<int> apis, size_t first, int64_t from)
      : apis_(std::move(apis)), last_(from) {
    thread_ = std::thread([this, first] { Run(first); });
  }
  ~ResumingWatch() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t Last() const { return last_; }
  // The member whose stream the client reads (or opens) now.
  size_t Member() const { return member_; }
  std::vector<Kept> Events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::vector<Opening> Openings() const {
    std::lock_guard<std::mutex> lock(mu_);
    return openings_;
  }

 private:
  void Run(size_t member) {
    while (!stop_) {
      const int64_t from = last_;
      member_ = member;
      // A stream silent for 8 s (the server bookmarks after 5) is a member that froze.
      WatchOpening opening = StreamWatch(
          apis_[member], "/v1/services?watch=true&resourceVersion=" + std::to_string(from),
          [&](const Json& ev) {
            const std::string type = ev.value("type", "");
            if (type == "ERROR") return false;
            const Json& obj = ev["object"];
            std::lock_guard<std::mutex> lock(mu_);
            if (type != "BOOKMARK") {
              events_.push_back({{type, obj["metadata"].value("name", ""), RvOf(obj)},
                                 obj["metadata"].value("generation", uint64_t{0})});
            }
            last_ = RvOf(obj);
            return !stop_.load();
          },
          8s);
      {
        std::lock_guard<std::mutex> lock(mu_);
        openings_.push_back({member, from, opening.status});
      }
      member = (member + 1) % apis_.size();
      // A member down, frozen or without a leader: the next one is tried after a breath, not
      // in a tight loop.
      if (opening.status != 200) WaitFor([&] { return stop_.load(); }, 100ms);
    }
  }

  const std::vector<int> apis_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> last_;
  std::atomic<size_t> member_{0};
  mutable std::mutex mu_;
  std::vector<Kept> events_;
  std::vector<Opening> openings_;
  std::thread thread_;
};

std::vector<WatchedEvent> EventsOf(const std::vector<Kept>& kept) {
  std::vector<WatchedEvent> events;
  for (const auto& k : kept) events.push_back(k.event);
  return events;
}

// One unbroken watch of member `api` from `from` through revision `to`.
std::vector<WatchedEvent> Replay(int api, int64_t from, int64_t to) {
  std::vector<WatchedEvent> events;
  StreamWatch(api, "/v1/services?watch=true&resourceVersion=" + std::to_string(from),
              [&](const Json& ev) {
                const Json& obj = ev["object"];
                const std::string type = ev.value("type", "");
                if (type == "ERROR") return false;
                if (type != "BOOKMARK")
                  events.push_back({type, obj["metadata"].value("name", ""), RvOf(obj)});
                return RvOf(obj) < to;
              });
  return events;
}

std::string Describe(const std::vector<Opening>& openings) {
  std::string out;
  for (const auto& o : openings) {
    out += " member " + std::to_string(o.member) + " from " + std::to_string(o.from) + ": " +
           std::to_string(o.status) + ";";
  }
  return out;
}

TEST_F(ClusterTest, AWatchResumedOnAnotherMemberSeesEveryWriteOnceInOrder) {
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  // Writes Service `name` through member m: its resourceVersion, 0 when the write failed.
  auto mark = [&](const Member& m, const std::string& name) -> int64_t {
    if (Put(m, name, 0) != 201) return 0;
    auto [code, body] = HttpGet(m.api, "/v1/services/" + name);
    return code == 200 ? RvOf(Json::parse(body)) : 0;
  };
  std::vector<int> apis;
  size_t watched = 0;
  for (size_t i = 0; i < members_.size(); ++i) {
    apis.push_back(members_[i].api);
    if (members_[i].name == leader) watched = i;
  }
  // List, then watch from the list's revision: three clients, one starting on each member (a
  // revision of 0 would mean "from now", so there is one write first).
  ASSERT_GT(mark(Named(leader), "first"), 0);
  auto [code, list] = HttpGet(apis[watched], "/v1/services");
  ASSERT_EQ(code, 200) << list;
  const int64_t start = std::stoll(Json::parse(list).value("resourceVersion", "0"));
  ASSERT_GT(start, 0);
  std::vector<std::unique_ptr<ResumingWatch>> watches;
  for (size_t i = 0; i < members_.size(); ++i)
    watches.push_back(std::make_unique<ResumingWatch>(apis, i, start));
  ResumingWatch& on_leader = *watches[watched];
  KvLoad load({.clients = 3, .keys = 6, .seed = 4242, .api = [&](int, std::mt19937& rng) {
                 return apis[rng() % apis.size()];
               }});
  auto after = [&](int more) { return load.Progress(more); };
  ASSERT_TRUE(after(60));
  ASSERT_TRUE(WaitFor([&] { return on_leader.Events().size() > 10; }, 10s))
      << "the watch on the leader saw " << on_leader.Events().size() << " events";

  // The member watched dies: its client goes on with another from where it was, and sees a
  // write made after the kill.
  Member& old = Named(leader);
  Kill(old);
  const std::string next = AgreedLeaderOf(Others(leader));
  ASSERT_FALSE(next.empty());
  const int64_t after_kill = mark(Named(next), "after-kill");
  ASSERT_GT(after_kill, 0);
  EXPECT_TRUE(
      WaitFor([&] { return on_leader.Member() != watched && on_leader.Last() >= after_kill; }, 20s))
      << "the watch did not go on on another member: it reads member " << on_leader.Member()
      << " at " << on_leader.Last() << "; its openings:" << Describe(on_leader.Openings());
  EXPECT_TRUE(after(60));
  Start(old);
  EXPECT_TRUE(after(60));

  // A follower that a client reads is frozen, then thawed (the clients read two members at
  // least, so one reads a follower): its stream falls silent, and the client moves on.
  const std::string now_leader = AgreedLeader();
  ASSERT_FALSE(now_leader.empty());
  ResumingWatch* stalled = nullptr;
  std::string reading;
  for (auto& w : watches) {
    reading += " " + members_[w->Member()].name + " (openings:" + Describe(w->Openings()) + ")";
    if (!stalled && members_[w->Member()].name != now_leader) stalled = w.get();
  }
  ASSERT_NE(stalled, nullptr) << "no client reads a follower; the leader is " << now_leader
                              << ", the clients read" << reading;
  Member& frozen = members_[stalled->Member()];
  frozen.process->Signal(SIGSTOP);
  const int64_t while_frozen = mark(Named(now_leader), "while-frozen");
  ASSERT_GT(while_frozen, 0);
  EXPECT_TRUE(WaitFor([&] { return stalled->Last() >= while_frozen; }, 20s))
      << "the watch stalled at " << stalled->Last() << " with " << frozen.name
      << " frozen; its openings:" << Describe(stalled->Openings());
  frozen.process->Signal(SIGCONT);
  EXPECT_TRUE(after(60));
  load.Stop();

  // One last write marks the end; every client must get that far.
  const int64_t end = mark(Named(AgreedLeader()), "last");
  ASSERT_GT(end, start);
  auto [lcode, final_list] = HttpGet(Named(AgreedLeader()).api, "/v1/services");
  ASSERT_EQ(lcode, 200) << final_list;
  const Json items = Json::parse(final_list)["items"];
  for (auto& w : watches) {
    ASSERT_TRUE(WaitFor([&] { return w->Last() >= end; }, 30s))
        << "a watch reached " << w->Last() << " of " << end;
    w->Stop();
  }

  // What one unbroken watch of each member replays from the start: the same on all three.
  std::vector<std::vector<WatchedEvent>> replays;
  for (size_t i = 0; i < members_.size(); ++i) {
    replays.push_back(Replay(apis[i], start, end));
    EXPECT_EQ(FirstDifference(replays[i], replays[0]), "")
        << members_[i].name << " against " << members_[0].name;
  }
  const auto& reference = replays[0];
  ASSERT_GT(reference.size(), 100u);
  // The comparison bites: the reference with one event left out differs.
  auto short_one = reference;
  short_one.erase(short_one.begin() + short_one.size() / 2);
  EXPECT_NE(FirstDifference(short_one, reference), "");

  size_t acknowledged = 0;
  for (size_t w = 0; w < watches.size(); ++w) {
    auto kept = watches[w]->Events();
    while (!kept.empty() && kept.back().event.rv > end)
      kept.pop_back();  // a controller's late writes
    const auto events = EventsOf(kept);
    // In strictly increasing resourceVersions (nothing twice, nothing back in time), and
    // exactly what the replay has.
    for (size_t i = 1; i < events.size(); ++i) {
      ASSERT_LT(events[i - 1].rv, events[i].rv)
          << "watch " << w << ", event " << i << " of " << events.size();
    }
    EXPECT_EQ(FirstDifference(events, reference), "") << "watch " << w;
    // Every acknowledged put is there: a Service's generation counts its spec writes.
    std::set<std::pair<std::string, uint64_t>> writes;
    for (const auto& k : kept) writes.insert({k.event.name, k.generation});
    acknowledged = 0;
    for (const auto& op : load.All()) {
      if (op.input.op != KvOp::kPut || !op.output || !op.output->ok) continue;
      ++acknowledged;
      EXPECT_TRUE(writes.count({op.input.key, op.output->version}))
          << "watch " << w << ": the put of " << op.input.key << " acknowledged at generation "
          << op.output->version << " never reached it";
    }
    // And its last event of each Service is the object the final list holds.
    std::map<std::string, int64_t> last_event;
    for (const auto& e : events) last_event[e.name] = e.rv;
    for (const auto& item : items) {
      const std::string name = item["metadata"].value("name", "");
      // Written before the watches start ("first"), or by a controller after the end mark.
      if (RvOf(item) <= start || RvOf(item) > end) continue;
      EXPECT_EQ(last_event[name], RvOf(item)) << "watch " << w << ": " << name;
    }
    std::set<std::string> listed;
    for (const auto& item : items) listed.insert(item["metadata"].value("name", ""));
    for (const auto& [name, rv] : last_event)
      EXPECT_TRUE(listed.count(name)) << "watch " << w << ": " << name;
  }
  EXPECT_GT(acknowledged, 100u);
  std::set<size_t> leader_served;
  for (const auto& o : on_leader.Openings()) {
    if (o.status == 200) leader_served.insert(o.member);
  }
  EXPECT_GE(leader_served.size(), 2u) << Describe(on_leader.Openings());
  // A member behind the revision a client resumes from catches up before it answers: a
  // revision seen on one member is never "in the future" on another (400).
  for (const auto& w : watches) {
    for (const auto& o : w->Openings()) EXPECT_NE(o.status, 400) << Describe(w->Openings());
  }
  std::cout << reference.size() << " events from revision " << start << " to " << end << ", "
            << acknowledged << " acknowledged puts; openings:";
  for (const auto& w : watches) std::cout << "\n " << Describe(w->Openings());
  std::cout << "\n";
}

// Each member compacts its own watch history: with a window of 20 revisions, a watch from a
// revision long gone is refused 410 Gone by every member, one from a recent revision replays.
// (The window leaves room for the writes the leader makes of itself, such as the built-in
// security profiles, which may come after the test's.)
TEST_F(ClusterTest, AWatchFromACompactedRevisionIsGoneOnEveryMember) {
  extra_ = {"--history-revisions", "20", "--history-seconds", "0", "--compaction-interval", "1"};
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  httplib::Client cli("127.0.0.1", Named(leader).api);
  cli.set_read_timeout(10, 0);
  int64_t last = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string name = "p" + std::to_string(i);
    Json body = {{"kind", "SecurityProfile"},
                 {"metadata", {{"name", name}}},
                 {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
    auto res = cli.Put("/v1/securityprofiles/" + name, body.dump(), "application/json");
    ASSERT_TRUE(res && res->status == 201) << (res ? res->body : "no answer");
    last = RvOf(Json::parse(res->body));
  }
  for (const auto& m : members_) {
    WatchStart old;
    EXPECT_TRUE(WaitFor(
        [&] {
          old = OpenWatch(m.api, "/v1/securityprofiles?watch=true&resourceVersion=2", 1);
          return old.status == 410;
        },
        15s, 200ms))
        << m.name << " answered " << old.status << " " << old.body;
    Json err = Json::parse(old.body, nullptr, false);
    EXPECT_EQ(err.value("reason", ""), "Gone") << m.name << ": " << old.body;
    // A recent revision is still there: the write after it comes back.
    WatchStart recent = OpenWatch(
        m.api, "/v1/securityprofiles?watch=true&resourceVersion=" + std::to_string(last - 1), 1);
    EXPECT_EQ(recent.status, 200) << m.name << ": " << recent.body;
    ASSERT_EQ(recent.events.size(), 1u) << m.name;
    EXPECT_EQ(RvOf(recent.events[0]["object"]), last) << m.name;
  }
}

}  // namespace
}  // namespace mentat::e2e
