// Durability of the store through the real server: concurrent writers over HTTP, kill -9 of
// the server in the middle of the load, and every acknowledged write checked after restart.
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

TEST(Durability, Kill9LosesNoAcknowledgedWrite) {
  std::string dir = TempDir("durability");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log");
  ASSERT_TRUE(server);

  // Each writer updates its own objects; an acknowledged write is one answered 200/201.
  std::mutex mu;
  std::map<std::string, int> acked;  // name -> last acknowledged count value
  std::atomic<bool> stop{false};
  std::atomic<int> total{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&, w] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_connection_timeout(1, 0);
      cli.set_read_timeout(5, 0);
      for (int i = 0; !stop; ++i) {
        std::string name = "w" + std::to_string(w) + "-" + std::to_string(i % 50);
        int value = i / 50 + 1;
        std::string body = "name: " + name + "\ndriver: exec\ncommand: /bin/true\ncount: " +
                           std::to_string(value % 1000) + "\n";
        auto res = cli.Put("/v1/services/" + name, body, "application/yaml");
        if (!res) break;  // the server is gone: this write was not acknowledged
        if (res->status == 200 || res->status == 201) {
          std::lock_guard<std::mutex> lock(mu);
          acked[name] = value % 1000;
          total++;
        }
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return total >= 400; }, 60s)) << "writes are not being acknowledged";
  server->Signal(SIGKILL);
  ASSERT_TRUE(server->Wait(5s).has_value());
  stop = true;
  for (auto& t : writers) t.join();

  server = StartServer(port, dir + "/data", dir + "/server.log");
  ASSERT_TRUE(server) << ReadFile(dir + "/server.log");
  int checked = 0, missing = 0;
  for (const auto& [name, value] : acked) {
    auto [code, body] = HttpGet(port, "/v1/services/" + name);
    Json obj = Json::parse(body, nullptr, false);
    // A write acknowledged later than the one we recorded is fine; an older one is not.
    if (code != 200 || obj["spec"].value("count", -1) < value) {
      ++missing;
      ADD_FAILURE() << name << ": acknowledged count " << value << ", after restart: " << body;
    }
    ++checked;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_GT(checked, 300);
  std::cout << total.load() << " writes acknowledged, " << checked
            << " objects checked after kill -9\n";
}

}  // namespace
}  // namespace mentat::e2e
