// Watch history compaction through the real server's flags: with a short window, a watch from
// a compacted revision is refused with 410 Gone, and one from a recent revision still resumes.
#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

TEST(Compaction, OldWatchIsGoneRecentWatchResumes) {
  std::string dir = TempDir("compaction");
  int port = FreePort();
  auto server = StartServer(
      port, dir + "/data", dir + "/server.log",
      {"--history-revisions", "5", "--history-seconds", "0", "--compaction-interval", "1"});
  ASSERT_TRUE(server) << ReadFile(dir + "/server.log");

  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(5, 0);
  int64_t last = 0;
  for (int i = 0; i < 30; ++i) {
    std::string name = "c-" + std::to_string(i);
    Json body = {{"kind", "SecurityProfile"},
                 {"metadata", {{"name", name}}},
                 {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
    auto res = cli.Put("/v1/securityprofiles/" + name, body.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 201) << res->body;
    last = std::stoll(Json::parse(res->body)["metadata"]["resourceVersion"].get<std::string>());
  }
  auto [code, health] = HttpGet(port, "/healthz");
  ASSERT_EQ(code, 200);
  ASSERT_EQ(Json::parse(health)["revision"].get<int64_t>(), last);

  // The compactor runs every second and keeps 5 revisions: revision 2 goes soon.
  WatchStart old;
  ASSERT_TRUE(WaitFor(
      [&] {
        old = OpenWatch(port, "/v1/securityprofiles?watch=true&resourceVersion=2", 1);
        return old.status == 410;
      },
      15s, 200ms))
      << "a watch from revision 2 was never refused; last status " << old.status << ", events "
      << old.events.size() << "\n"
      << ReadFile(dir + "/server.log");
  // Refused before the stream starts: a plain 410 with the error, not an ERROR event.
  Json err = Json::parse(old.body, nullptr, false);
  EXPECT_EQ(err.value("code", 0), 410) << old.body;
  EXPECT_EQ(err.value("reason", ""), "Gone") << old.body;
  EXPECT_NE(err.value("message", "").find("too old"), std::string::npos) << old.body;

  // A recent revision is still in the window: the watch replays the two changes after it.
  WatchStart recent = OpenWatch(
      port, "/v1/securityprofiles?watch=true&resourceVersion=" + std::to_string(last - 2), 2);
  ASSERT_EQ(recent.status, 200) << recent.body;
  ASSERT_EQ(recent.events.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const Json& ev = recent.events[i];
    EXPECT_EQ(ev.value("type", ""), "ADDED") << ev.dump();
    EXPECT_EQ(ev["object"]["metadata"].value("name", ""), "c-" + std::to_string(28 + i));
    EXPECT_EQ(ev["object"]["metadata"].value("resourceVersion", ""), std::to_string(last - 1 + i));
  }

  // And new changes keep flowing to a watch from the current revision.
  WatchStart live;
  std::thread watcher([&] {
    live = OpenWatch(port,
                     "/v1/securityprofiles?watch=true&resourceVersion=" + std::to_string(last), 1);
  });
  Json body = {{"kind", "SecurityProfile"},
               {"metadata", {{"name", "c-30"}}},
               {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
  auto res = cli.Put("/v1/securityprofiles/c-30", body.dump(), "application/json");
  watcher.join();
  ASSERT_TRUE(res);
  ASSERT_EQ(live.status, 200) << live.body;
  ASSERT_EQ(live.events.size(), 1u);
  EXPECT_EQ(live.events[0]["object"]["metadata"].value("name", ""), "c-30");
}

}  // namespace
}  // namespace mentat::e2e
