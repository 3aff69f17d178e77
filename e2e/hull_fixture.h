// The fixture of hull's end-to-end tests (hull_*_test.cc): each test runs the real static
// binary (//cmd/hull) as root, with a state directory, lease root and busybox rootfs of its own,
// and sandbox-init from the runfiles. Helpers wait on a condition with a deadline, never a sleep.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mentat::e2e {

// A file's contents; "" when it cannot be read.
std::string Slurp(const std::string& path);

// One hull command's exit code and output.
struct Outcome {
  int code = -1;
  std::string out, err;
};

class HullTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  Outcome Hull(const std::vector<std::string>& args);

  // Starts hull without waiting for it; its output goes to *out_path and *err_path.
  pid_t SpawnHull(const std::vector<std::string>& args, std::string* out_path_p, std::string* err_path_p);

  // Writes <dir_>/<name>.json (rootfs root_) and returns its path; TearDown kills `name`.
  std::string Manifest(const std::string& name, const nlohmann::json& argv,
                       nlohmann::json extra = nlohmann::json::object());

  nlohmann::json Inspect(const std::string& name);

  // Waits (deadline, not a sleep) until `name` has exited; returns its inspect.
  nlohmann::json AwaitExit(const std::string& name, std::chrono::milliseconds deadline = std::chrono::seconds(10));

  // The host pid of the container's workload (pid 2 inside), from state.json.
  pid_t WorkloadPid(const std::string& name);

  // Waits (deadline, not a sleep) until `name`'s stdout.log contains `text`.
  std::string AwaitOutput(const std::string& name, const std::string& text,
                          std::chrono::milliseconds deadline = std::chrono::seconds(10));

  std::string dir_, state_, root_, root_parent_;
  std::vector<std::string> names_;
  int netns_fd_ = -1;                                    // BridgeTest's network namespace
  std::vector<std::pair<std::string, std::string>> env_;  // extra environment for hull
  int run_as_ = -1;                                      // run hull as this uid/gid (not root)
};

}  // namespace mentat::e2e
