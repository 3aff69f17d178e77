// What the apply-latency benches share: a dev mentat-server on a free port of 127.0.0.1, and a
// watch on services that records when each first reports a ready replica.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apis/client.h"
#include "e2e/harness.h"

namespace mentat::bench {

class DevStack {
 public:
  using Clock = std::chrono::steady_clock;

  // `mentat-server --dev` with its data under `dir`, plus `extra_args`, and the watch. nullptr
  // (the reason on stderr) when the server does not answer within 20 s.
  static std::unique_ptr<DevStack> Start(const std::string& dir, const std::vector<std::string>& extra_args = {});
  ~DevStack();  // stops the watch, then the server (SIGTERM)

  ApiClient& client() { return *client_; }
  std::string Log() const { return server_->Log(); }

  // When `name` first reported a ready replica, waiting up to `deadline`; nullopt if it did not.
  std::optional<Clock::time_point> AwaitReady(const std::string& name, std::chrono::seconds deadline);

 private:
  DevStack() = default;

  std::unique_ptr<e2e::Process> server_;
  std::unique_ptr<ApiClient> client_, watcher_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Clock::time_point> ready_at_;
  std::atomic<bool> stop_{false};
  std::thread watch_;
};

}  // namespace mentat::bench
