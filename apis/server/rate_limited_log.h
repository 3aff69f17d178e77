// A warning for something that may happen a million times in a minute (failed logins from one
// address, accept() failing for want of descriptors): the first occurrence is logged at once,
// the rest are counted, and at most one line per interval says how many there were.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace mentat {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::seconds interval = std::chrono::seconds(10))
      : interval_(interval) {}

  // Logs `message` as a warning if a line is due, with the number of occurrences not logged
  // since the last line; otherwise only counts it. Any thread.
  void Warn(const std::string& message);
  // Occurrences so far, logged or not.
  uint64_t count() const;

 private:
  const std::chrono::seconds interval_;
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};
  bool logged_ = false;
  uint64_t unlogged_ = 0;
  uint64_t count_ = 0;
};

}  // namespace mentat
