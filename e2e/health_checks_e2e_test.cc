// Health checks against a real server, its in-process agent and real workloads: an exec check
// gates Ready and, failing failure_threshold times in a row, takes it away with an Unhealthy
// event naming the check; an http check that fails on a new version (404) makes the rollout
// fail and auto_revert bring the old version back.
#include <gtest/gtest.h>

#include <regex>

#include "e2e/server_fixture.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class HealthChecksTest : public ServerFixture {
 protected:
  void SetUp() override { StartWith("checks", {"--dev", "--node-name", "e2e-node"}); }
  bool AllocReady(const std::string& name) {
    Json a = Get("/v1/allocations/" + name);
    return a.is_object() && a.value("status", Json::object()).value("ready", false);
  }
};

TEST_F(HealthChecksTest, AnExecCheckGatesReadyWithThresholds) {
  std::string flag = dir_ + "/healthy";
  Apply("name: gated\ndriver: exec\ncommand: /bin/sleep\nargs: ['3600']\n"
        "env: {FLAG: " + flag + "}\n"
        "checks:\n  - type: exec\n    command: [/bin/sh, -c, 'test -f \"$FLAG\" || { echo no flag; exit 3; }']\n"
        "    interval: 200ms\n    failure_threshold: 2\n");
  // Running, but not Ready: the check fails, and the status says how.
  ASSERT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/gated-0");
    return a.is_object() && a["status"].value("message", "") ==
                                "running, check exec /bin/sh -c test -f \"$FLAG\" || { echo no flag; "
                                "exit 3; } failing: exit code 3: no flag";
  }, 10s)) << Get("/v1/allocations/gated-0").dump();
  EXPECT_FALSE(AllocReady("gated-0"));

  WriteFile(flag, "");
  ASSERT_TRUE(WaitFor([&] { return AllocReady("gated-0"); }, 5s)) << Get("/v1/allocations/gated-0").dump();
  ASSERT_EQ(Mt({"wait", "--for=condition=Ready", "service/gated", "--timeout=10s"}).exit_code, 0);

  // Two failures in a row take Ready away, with an event naming the check.
  std::remove(flag.c_str());
  ASSERT_TRUE(WaitFor([&] { return !AllocReady("gated-0"); }, 5s));
  std::string events;
  EXPECT_TRUE(WaitFor([&] {
    events = HttpGet(port_, "/v1/events?namespace=default").second;
    return std::regex_search(events, std::regex("check exec /bin/sh -c test -f .* failed 2 times in a "
                                                "row: exit code 3: no flag\",\"reason\":\"Unhealthy\""));
  }, 5s)) << events;
}

TEST_F(HealthChecksTest, AnHttpCheckFailingOnTheNewVersionAutoReverts) {
  int app = FreePort();
  std::string base = "name: web\ndriver: exec\ncommand: /usr/bin/python3\n"
                     "args: ['-m', 'http.server', '--bind', '127.0.0.1', '" + std::to_string(app) + "']\n"
                     "port: " + std::to_string(app) + "\n"
                     "deploy: {min_healthy_time: 1s, healthy_deadline: 5s, auto_revert: true}\n";
  Apply(base + "checks: [{type: http, path: /, interval: 200ms}]\n");
  auto st = Mt({"rollout", "status", "web", "--timeout", "60s"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;

  // The new version serves, but its health path is missing: 404.
  Apply(base + "checks: [{type: http, path: /healthz, interval: 200ms}]\n");
  st = Mt({"rollout", "status", "web", "--timeout", "60s"});
  EXPECT_EQ(st.exit_code, 1) << st.out << st.err;
  EXPECT_TRUE(std::regex_search(st.err, std::regex(
      "rollout of revision 2 failed: web-0 was not healthy within 5s \\(Running: running, check "
      "http :[0-9]+/healthz failing: GET /healthz: HTTP 404\\); reverting to revision 1")))
      << st.err;
  ASSERT_TRUE(WaitFor([&] {
    Json s = Get("/v1/services/web");
    return s.is_object() && s["spec"]["checks"][0]["path"] == "/";
  }, 10s));
  st = Mt({"rollout", "status", "web", "--timeout", "60s"});
  EXPECT_EQ(st.exit_code, 0) << st.out << st.err;
  EXPECT_TRUE(AllocReady("web-0"));
}

}  // namespace
}  // namespace mentat::e2e
