// A gtest fixture for e2e tests that talk to one mentat-server: it starts the server (with the
// flags a test gives, e.g. --dev for its in-process agent), runs mt against it with a clean
// environment, applies manifests, reads objects over HTTP, and at the end deletes every
// Service and waits until their allocations are gone.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "e2e/harness.h"

namespace mentat::e2e {

class ServerFixture : public ::testing::Test {
 protected:
  using Json = nlohmann::json;

  // Starts the server; call from SetUp (or a test) before anything else.
  void StartWith(const std::string& name, std::vector<std::string> flags) {
    dir_ = TempDir(name);
    port_ = FreePort();
    flags_ = std::move(flags);
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log", flags_);
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
  }
  // The same server again, on the same data (after a kill or a stop).
  void Restart() {
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log", flags_);
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
  }
  void TearDown() override {
    if (!server_ || !server_->Running()) return;
    Mt({"delete", "services", "--all"});
    WaitFor([&] { return Mt({"get", "allocations", "-o", "name"}).out.empty(); },
            std::chrono::seconds(30));
  }

  // mt's command line with `args`, against this server in a clean environment.
  std::vector<std::string> MtArgv(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "MENTAT_TOKEN", "NO_COLOR=1", "HOME=" + dir_,
                                     "MENTAT_ADDR=" + Addr(), Runfile("cmd/mt/mt")};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  CommandResult Mt(std::vector<std::string> args) { return RunCommand(MtArgv(std::move(args))); }
  // Writes `manifest` to a file and applies it; the test fails if mt does.
  void Apply(const std::string& manifest) {
    std::string f = dir_ + "/apply.yaml";
    WriteFile(f, manifest);
    auto r = Mt({"apply", "-f", f});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // GET path: the JSON body of a 200, else null.
  Json Get(const std::string& path) {
    auto [code, body] = HttpGet(port_, path);
    return code == 200 ? Json::parse(body) : Json();
  }
  std::string Addr() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::string dir_;
  int port_ = 0;
  std::vector<std::string> flags_;
  std::unique_ptr<Process> server_;
};

}  // namespace mentat::e2e
