// Events through the real server and its in-process agent: Scheduled and Started for a new
// allocation, Scaled for a count change, Restarted after the workload is killed,
// FailedScheduling (counted, not repeated) when no node can take a service, and expiry after
// --event-ttl.
#include <signal.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// The events about `name` (kind `kind`), as the API lists them.
std::vector<Json> EventsAbout(int port, const std::string& kind, const std::string& name) {
  auto [code, body] = HttpGet(port, "/v1/events");
  std::vector<Json> out;
  if (code != 200) return out;
  Json list = Json::parse(body);
  for (const auto& e : list["items"]) {
    const Json& ref = e["spec"]["involvedObject"];
    if (ref.value("kind", "") == kind && ref.value("name", "") == name) out.push_back(e);
  }
  return out;
}

std::optional<Json> Find(const std::vector<Json>& events, const std::string& reason) {
  for (const auto& e : events) {
    if (e["spec"].value("reason", "") == reason) return e;
  }
  return std::nullopt;
}

bool Put(int port, const std::string& name, const std::string& yaml) {
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Put("/v1/services/" + name, yaml, "application/yaml");
  return r && (r->status == 200 || r->status == 201);
}

TEST(Events, ScheduledStartedScaledAndRestarted) {
  std::string dir = TempDir("events");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log", {"--dev", "--node-name", "ev-node"});
  ASSERT_TRUE(server);
  std::string svc = "name: sleeper\ndriver: exec\ncommand: /bin/sleep\nargs: [\"600\"]\n";
  ASSERT_TRUE(Put(port, "sleeper", svc));
  ASSERT_TRUE(WaitFor([&] {
    auto ev = EventsAbout(port, "Allocation", "sleeper-0");
    return Find(ev, "Scheduled") && Find(ev, "Started");
  }, 20s)) << HttpGet(port, "/v1/events").second;
  auto ev = EventsAbout(port, "Allocation", "sleeper-0");
  EXPECT_EQ((*Find(ev, "Scheduled"))["spec"]["type"], "Normal");
  EXPECT_NE((*Find(ev, "Scheduled"))["spec"]["message"].get<std::string>().find("ev-node"), std::string::npos);
  EXPECT_EQ((*Find(ev, "Started"))["spec"]["source"], "agent/ev-node");

  ASSERT_TRUE(Put(port, "sleeper", svc + "count: 2\n"));
  ASSERT_TRUE(WaitFor([&] { return Find(EventsAbout(port, "Service", "sleeper"), "Scaled").has_value(); }, 20s));
  EXPECT_EQ((*Find(EventsAbout(port, "Service", "sleeper"), "Scaled"))["spec"]["message"],
            "scaled from 1 to 2 replicas");

  // Kill the workload: the agent restarts it and says so.
  auto alloc = Json::parse(HttpGet(port, "/v1/allocations/sleeper-0").second);
  int pid = alloc["status"].value("pid", 0);
  ASSERT_GT(pid, 0) << alloc.dump();
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return Find(EventsAbout(port, "Allocation", "sleeper-0"), "Restarted").has_value(); }, 20s))
      << HttpGet(port, "/v1/events").second;
  auto restarted = *Find(EventsAbout(port, "Allocation", "sleeper-0"), "Restarted");
  EXPECT_EQ(restarted["spec"]["type"], "Warning");
  EXPECT_NE(restarted["spec"]["message"].get<std::string>().find("signal"), std::string::npos)
      << restarted.dump();
}

TEST(Events, PlacementFailureIsOneCountedEventThatExpires) {
  std::string dir = TempDir("events-fail");
  int port = FreePort();
  // No --dev: no agent, so no node can take the service.
  auto server = StartServer(port, dir + "/data", dir + "/server.log",
                            {"--event-ttl", "8", "--compaction-interval", "1"});
  ASSERT_TRUE(server);
  ASSERT_TRUE(Put(port, "homeless", "name: homeless\ndriver: exec\ncommand: /bin/true\n"));
  // The controller retries every 5 s: the same event is counted, not repeated.
  ASSERT_TRUE(WaitFor([&] {
    auto f = Find(EventsAbout(port, "Service", "homeless"), "FailedScheduling");
    return f && (*f)["spec"].value("count", 0) >= 2;
  }, 20s)) << HttpGet(port, "/v1/events").second;
  auto events = EventsAbout(port, "Service", "homeless");
  EXPECT_EQ(events.size(), 1u);
  auto f = *Find(events, "FailedScheduling");
  EXPECT_EQ(f["spec"]["type"], "Warning");
  EXPECT_NE(f["spec"]["message"].get<std::string>().find("no agent has registered"), std::string::npos)
      << f.dump();
  // Once it stops happening, it expires after the TTL.
  httplib::Client cli("127.0.0.1", port);
  ASSERT_EQ(cli.Delete("/v1/services/homeless")->status, 200);
  ASSERT_TRUE(WaitFor([&] { return EventsAbout(port, "Service", "homeless").empty(); }, 30s))
      << HttpGet(port, "/v1/events").second;
}

}  // namespace
}  // namespace mentat::e2e
