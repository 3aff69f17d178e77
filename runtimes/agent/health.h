// Health checks of a running task (the spec's `checks`, after Kubernetes' probes and Nomad's
// checks): tcp (a connection to 127.0.0.1:port), http (GET 127.0.0.1:port/path, 2xx or 3xx)
// and exec (a command run inside the task through Driver::Exec, exit 0). A check passes after
// success_threshold passes in a row and fails after failure_threshold failures in a row; an
// allocation is Ready only while every check passes. A service with a port and no checks gets
// the implicit tcp check it always had: every 50 ms, one pass or failure decides.
//
// Checks run on a small pool of threads, so a slow http or exec check (up to its timeout)
// never delays the others or the agent's heartbeat.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apis/object.h"
#include "runtimes/driver.h"

namespace mentat {

struct CheckSpec {
  std::string type;  // tcp, http or exec
  int port = 0;
  std::string path = "/";
  std::vector<std::string> command;
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds timeout{1000};
  int success_threshold = 1;
  int failure_threshold = 3;

  // "http :8080/healthz", "exec /bin/check": how messages name it.
  std::string Describe() const;
  // The checks of a canonical spec; the implicit tcp check for a port and no checks.
  static std::vector<CheckSpec> ForSpec(const Json& spec);
};

// One check's standing on one task.
struct CheckState {
  CheckSpec spec;
  bool passing = false;
  int passes = 0;    // in a row
  int failures = 0;  // in a row
  bool in_flight = false;
  std::chrono::steady_clock::time_point due{};
  std::string last_error;  // why the last run failed

  // Counts one result; returns true when `passing` changed.
  bool Record(bool ok, const std::string& error);
};

struct CheckResult {
  bool ok = false;
  std::string error;  // "HTTP 500", "connection refused", "exit code 3", "timed out after 1s"
};

// Runs one check now. `driver` and `task_id` serve exec checks.
CheckResult RunCheck(const CheckSpec& check, Driver* driver, const std::string& task_id);

// A fixed pool that runs submitted checks and hands each result to its callback.
class CheckRunner {
 public:
  explicit CheckRunner(int threads = 4);
  ~CheckRunner();
  void Submit(std::function<void()> job);

 private:
  void Work();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace mentat
