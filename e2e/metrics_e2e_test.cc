// GET /metrics on the real server: Prometheus text with request counts and latency
// histograms by route and code, the store revision, open watch streams, and reconcile queue
// depth; every sample line well-formed.
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;

TEST(Metrics, RequestsRevisionWatchersAndQueueDepthInPrometheusText) {
  std::string dir = TempDir("metrics");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log");
  ASSERT_TRUE(server);
  httplib::Client cli("127.0.0.1", port);
  std::string svc = R"({"name":"web","driver":"exec","command":"/bin/sleep","args":["600"]})";
  ASSERT_EQ(cli.Put("/v1/services/web", svc, "application/json")->status, 201);
  ASSERT_EQ(cli.Get("/v1/services/nope")->status, 404);
  ASSERT_EQ(cli.Get("/no/such/route")->status, 404);
  // One watch stays open while metrics are read.
  httplib::Client wc("127.0.0.1", port);
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    wc.Get("/v1/services?watch=true", [&](const char*, size_t) { return !stop.load(); });
  });
  // The watch is open, and the service controller has reconciled "web" (asynchronously, after
  // the PUT was answered).
  const std::regex reconciled(
      "\nmentat_reconcile_total\\{controller=\"service-controller\",result=\"success\"\\} [1-9]");
  std::string text;
  ASSERT_TRUE(WaitFor([&] {
    auto r = cli.Get("/metrics");
    text = r ? r->body : "";
    return text.find("mentat_watch_streams 1\n") != std::string::npos &&
           std::regex_search(text, reconciled);
  }, 30s)) << text;
  auto r = cli.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  text = r->body;
  EXPECT_NE(text.find("mentat_http_requests_total{route=\"/v1/:kind/:name\",method=\"PUT\",code=\"201\"} 1\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mentat_http_requests_total{route=\"/v1/:kind/:name\",method=\"GET\",code=\"404\"} 1\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mentat_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 1\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mentat_http_request_duration_seconds_bucket{route=\"/v1/:kind/:name\",method=\"PUT\",le=\"+Inf\"} 1\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mentat_http_request_duration_seconds_count{route=\"/v1/:kind/:name\",method=\"PUT\"} 1\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mentat_reconcile_queue_depth{controller=\""), std::string::npos) << text;
  EXPECT_TRUE(std::regex_search(text, reconciled)) << text;
  EXPECT_NE(text.find("\nmentat_reconcile_seconds_total{controller=\"node-controller\"} "), std::string::npos)
      << text;
  auto health = nlohmann::json::parse(HttpGet(port, "/healthz").second);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, std::regex("mentat_store_revision (\\d+)"))) << text;
  EXPECT_GE(std::stoll(m[1]), health["revision"].get<int64_t>() - 5);
  // Every line is a comment or `name{labels} value`.
  std::istringstream lines(text);
  std::string line;
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+]?([0-9.]+([eE][-+]?[0-9]+)?|Inf|NaN)$)");
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << "malformed sample: " << line;
    ++samples;
  }
  EXPECT_GT(samples, 20);
  stop = true;
  cli.Put("/v1/services/web", svc, "application/json");  // an event ends the watch read
  wc.stop();
  watcher.join();
}

}  // namespace
}  // namespace mentat::e2e
