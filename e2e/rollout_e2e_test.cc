// Rolling deploys against a real server with its in-process agent and real processes:
// a rolling update never has more than max_parallel slots unavailable (checked on the exact
// sequence of allocation changes, replayed from the store's watch history); a new version
// whose health check never passes is rolled back by auto_revert; `mt rollout status`,
// `history` and `undo` report and drive it.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "e2e/server_fixture.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class RolloutTest : public ServerFixture {
 protected:
  void SetUp() override { StartWith("rollout", {"--dev", "--node-name", "e2e-node"}); }
  int64_t Revision() {
    auto [code, body] = HttpGet(port_, "/v1/services");
    EXPECT_EQ(code, 200) << body;
    return std::stoll(Json::parse(body)["resourceVersion"].get<std::string>());
  }
  // Every Allocation change after `from`, in order, from the store's watch history.
  std::vector<Json> AllocationChangesSince(int64_t from) {
    auto r = RunCommand({"/usr/bin/curl", "-sN", "--max-time", "2",
                         "http://127.0.0.1:" + std::to_string(port_) +
                             "/v1/allocations?watch=true&resourceVersion=" + std::to_string(from)});
    std::vector<Json> events;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      Json ev = Json::parse(line);
      if (ev["type"] != "BOOKMARK") events.push_back(ev);
    }
    return events;
  }
  Json Service(const std::string& name) { return Get("/v1/services/" + name); }
  std::string Events() { return HttpGet(port_, "/v1/events?namespace=default").second; }
};

// The most slots without a Ready allocation at any point of the change sequence.
int MaxUnavailable(const std::vector<Json>& events, int count, std::map<std::string, bool> ready) {
  int worst = 0;
  for (const auto& ev : events) {
    std::string name = ev["object"]["metadata"]["name"];
    if (ev["type"] == "DELETED") {
      ready.erase(name);
    } else {
      ready[name] = ev["object"].value("status", Json::object()).value("ready", false);
    }
    int up = 0;
    for (const auto& [n, r] : ready) up += r;
    worst = std::max(worst, count - up);
  }
  return worst;
}

TEST_F(RolloutTest, RollingUpdateNeverHasMoreThanMaxParallelUnavailable) {
  const std::string base =
      "name: web\ndriver: exec\ncommand: /bin/sleep\ncount: 4\n"
      "deploy: {max_parallel: 2, min_healthy_time: 1s, healthy_deadline: 30s}\n";
  Apply(base + "args: ['301']\n");
  auto st = Mt({"rollout", "status", "web", "--timeout", "60s"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  EXPECT_TRUE(Has(st.out, "service/web: revision 1 rolled out: 4/4 healthy\n$")) << st.out;

  int64_t before = Revision();
  std::map<std::string, bool> ready;
  for (int i = 0; i < 4; ++i) ready["web-" + std::to_string(i)] = true;
  Apply(base + "args: ['302']\n");
  st = Mt({"rollout", "status", "web", "--timeout", "60s"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  EXPECT_TRUE(Has(st.out, "Waiting for the rollout of service/web to finish: revision 2: ")) << st.out;
  EXPECT_TRUE(Has(st.out, "service/web: revision 2 rolled out: 4/4 healthy\n$")) << st.out;

  auto events = AllocationChangesSince(before);
  ASSERT_FALSE(events.empty());
  // Exactly max_parallel at the worst moment: the rollout used its budget and never more.
  EXPECT_EQ(MaxUnavailable(events, 4, ready), 2);
  // Every slot now runs the new args, each replaced exactly once.
  int deletions = 0;
  for (const auto& ev : events) deletions += ev["type"] == "DELETED";
  EXPECT_EQ(deletions, 4);
  auto [code, body] = HttpGet(port_, "/v1/allocations?namespace=default");
  for (const auto& a : Json::parse(body)["items"]) EXPECT_EQ(a["spec"]["task"]["args"][0], "302");
  EXPECT_TRUE(Has(Events(), "RolloutStep")) << Events();
  EXPECT_TRUE(Has(Events(), "revision 2: replacing web-[0-9], web-[0-9]")) << Events();
}

TEST_F(RolloutTest, MaxParallelOneReplacesOneSlotAtATime) {
  const std::string base =
      "name: one\ndriver: exec\ncommand: /bin/sleep\ncount: 3\n"
      "deploy: {min_healthy_time: 1s, healthy_deadline: 30s}\n";
  Apply(base + "args: ['301']\n");
  ASSERT_EQ(Mt({"rollout", "status", "one", "--timeout", "60s"}).exit_code, 0);
  int64_t before = Revision();
  std::map<std::string, bool> ready;
  for (int i = 0; i < 3; ++i) ready["one-" + std::to_string(i)] = true;
  Apply(base + "args: ['302']\n");
  auto st = Mt({"rollout", "status", "one", "--timeout", "60s"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  EXPECT_EQ(MaxUnavailable(AllocationChangesSince(before), 3, ready), 1);
}

TEST_F(RolloutTest, AFailingHealthCheckOnTheNewVersionAutoReverts) {
  int app_port = FreePort();
  // 15 s to become healthy: time for a loaded machine to start python, for the new version
  // (which never listens) to fail, and for the revert (deploy is service-wide: it keeps it).
  const std::string base =
      "name: api\ndriver: exec\ncount: 1\nport: " + std::to_string(app_port) +
      "\ndeploy: {min_healthy_time: 1s, healthy_deadline: 15s, auto_revert: true}\n";
  const std::string good = base + "command: /usr/bin/python3\nargs: ['-m', 'http.server', '--bind', "
                                  "'127.0.0.1', '" + std::to_string(app_port) + "']\n";
  Apply(good);
  auto st = Mt({"rollout", "status", "api", "--timeout", "60s"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err << ReadFile(dir_ + "/server.log");

  // The new version never listens on its port: its readiness check never passes.
  Apply(base + "command: /bin/sleep\nargs: ['300']\n");
  st = Mt({"rollout", "status", "api", "--timeout", "60s"});
  EXPECT_EQ(st.exit_code, 1) << st.out << st.err;
  EXPECT_TRUE(Has(st.err, "error: service/api: rollout of revision 2 failed: api-0 was not healthy "
                          "within 15s \\(Running: running, waiting for port [0-9]+\\); reverting to "
                          "revision 1\n"))
      << st.err;

  // The spec is the good one again, rolled out as revision 3.
  ASSERT_TRUE(WaitFor([&] { return Service("api")["spec"]["command"] == "/usr/bin/python3"; }, 10s))
      << Service("api").dump();
  st = Mt({"rollout", "status", "api", "--timeout", "60s"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  EXPECT_TRUE(Has(st.out, "service/api: revision 3 rolled out: 1/1 healthy\n$")) << st.out;
  EXPECT_TRUE(Has(Events(), "RolloutReverted")) << Events();

  auto h = Mt({"rollout", "history", "api"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_TRUE(Has(h.out,
                  "^service/api\nREVISION +ROLLOUT +AGE +CHANGE\n"
                  "2 +Failed +[0-9]+s +exec /bin/sleep 300\n"
                  "3 +Complete \\(current\\) +[0-9]+s +args, command\n$"))
      << h.out;
}

// A task that exits at once (often before the driver's Start has returned) is Restarting
// between its runs, never Failed while its restart policy restarts it: a Failed allocation
// fails the rollout. Checked on every status the agent wrote, from the watch history.
TEST_F(RolloutTest, ATaskThatExitsAtOnceIsRestartingNeverFailed) {
  int64_t before = Revision();
  Apply("name: quitter\ndriver: exec\ncommand: /bin/false\n");
  auto restarts = [&] {
    Json a = Get("/v1/allocations/quitter-0");
    return a.is_object() ? a.value("status", Json::object()).value("restarts", 0) : 0;
  };
  ASSERT_TRUE(WaitFor([&] { return restarts() >= 3; }, 30s)) << Get("/v1/allocations/quitter-0").dump();
  int statuses = 0;
  for (const auto& ev : AllocationChangesSince(before)) {
    const Json& st = ev["object"].value("status", Json::object());
    if (!st.contains("phase")) continue;
    ++statuses;
    EXPECT_NE(st["phase"], "Failed") << ev.dump();
  }
  EXPECT_GE(statuses, 3);
  Json svc = Service("quitter");
  EXPECT_NE(svc.value("status", Json::object()).value("rollout", Json::object()).value("state", ""),
            "Failed")
      << svc.dump();
}

TEST_F(RolloutTest, UndoGoesBackToThePreviousOrAGivenRevision) {
  const std::string base = "name: undo\ndriver: exec\ncommand: /bin/sleep\ncount: 2\n"
                           "deploy: {max_parallel: 2, min_healthy_time: 1s, healthy_deadline: 30s}\n";
  Apply(base + "args: ['301']\n");
  ASSERT_EQ(Mt({"rollout", "status", "undo", "--timeout", "60s"}).exit_code, 0);
  Apply("env: {COLOUR: blue}\n" + base + "args: ['302']\n");
  ASSERT_EQ(Mt({"rollout", "status", "undo", "--timeout", "60s"}).exit_code, 0);

  auto h = Mt({"rollout", "history", "undo"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_TRUE(Has(h.out, "\n1 +Complete \\(stable\\)|\n1 +Complete +")) << h.out;
  EXPECT_TRUE(Has(h.out, "\n2 +Complete \\(current\\) +[0-9]+s +args, env\n$")) << h.out;
  auto one = Mt({"rollout", "history", "undo", "--revision", "1"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_TRUE(Has(one.out, "^service/undo revision 1\nargs:\n  - \"301\"\n")) << one.out;

  auto u = Mt({"rollout", "undo", "undo"});
  ASSERT_EQ(u.exit_code, 0) << u.err;
  EXPECT_EQ(u.out, "service/undo rolled back to revision 1\n");
  Json svc = Service("undo");
  EXPECT_EQ(svc["spec"]["args"][0], "301");
  EXPECT_FALSE(svc["spec"].contains("env")) << svc["spec"].dump();
  EXPECT_EQ(svc["spec"]["count"], 2) << "undo keeps the count";
  auto st = Mt({"rollout", "status", "undo", "--timeout", "60s"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  EXPECT_TRUE(Has(st.out, "revision 3 rolled out")) << st.out;  // revision 1, renumbered

  u = Mt({"rollout", "undo", "undo", "--to-revision", "2"});
  ASSERT_EQ(u.exit_code, 0) << u.err;
  EXPECT_EQ(Service("undo")["spec"]["args"][0], "302");

  // Errors say what is wrong.
  auto missing = Mt({"rollout", "undo", "undo", "--to-revision", "9"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(Has(missing.err, "service/undo has no revision 9")) << missing.err;
  auto nope = Mt({"rollout", "status", "nope"});
  EXPECT_EQ(nope.exit_code, 1);
  EXPECT_TRUE(Has(nope.err, "Service \"nope\" not found")) << nope.err;
  auto usage = Mt({"rollout", "frobnicate", "undo"});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
}

// name -> pid of the service's allocations once all `want` are Ready; empty until then.
std::map<std::string, int> ReadyPids(const nlohmann::json& list, size_t want) {
  std::map<std::string, int> out;
  if (!list.is_object() || list["items"].size() != want) return {};
  for (const auto& a : list["items"]) {
    const auto& st = a.value("status", nlohmann::json::object());
    if (!st.value("ready", false) || st.value("pid", 0) <= 0) return {};
    out[a["metadata"]["name"]] = st["pid"];
  }
  return out;
}

TEST_F(RolloutTest, ScalingAddsAndRemovesSlotsAndReplacesNothing) {
  const std::string base = "name: scale\ndriver: exec\ncommand: /bin/sleep\nargs: ['303']\n";
  Apply(base + "count: 2\n");
  std::map<std::string, int> two, five, one;
  ASSERT_TRUE(WaitFor([&] { return !(two = ReadyPids(Get("/v1/allocations?namespace=default"), 2)).empty(); }, 20s));

  Apply(base + "count: 5\n");
  ASSERT_TRUE(WaitFor([&] { return !(five = ReadyPids(Get("/v1/allocations?namespace=default"), 5)).empty(); }, 20s))
      << Mt({"get", "allocations"}).out;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(five.count("scale-" + std::to_string(i)), 1u);
  EXPECT_EQ(five["scale-0"], two["scale-0"]) << "scaling up replaced a running allocation";
  EXPECT_EQ(five["scale-1"], two["scale-1"]);
  EXPECT_TRUE(WaitFor([&] { return Has(Events(), "scaled from 2 to 5 replicas"); }, 10s)) << Events();

  Apply(base + "count: 1\n");
  ASSERT_TRUE(WaitFor([&] { return !(one = ReadyPids(Get("/v1/allocations?namespace=default"), 1)).empty(); }, 20s))
      << Mt({"get", "allocations"}).out;
  EXPECT_EQ(one, (std::map<std::string, int>{{"scale-0", two["scale-0"]}}));
  for (int i = 1; i < 5; ++i) {
    int pid = five["scale-" + std::to_string(i)];
    EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }, 10s)) << "scale-" << i << " still runs";
  }
  // No revision for a count change.
  EXPECT_EQ(Get("/v1/servicerevisions?namespace=default")["items"].size(), 1u);
}

}  // namespace
}  // namespace mentat::e2e
