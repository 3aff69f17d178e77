#include "apis/server/rate_limited_log.h"

#include <spdlog/spdlog.h>

namespace mentat {

void RateLimitedLog::Warn(const std::string& message) {
  uint64_t unlogged;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
    auto now = std::chrono::steady_clock::now();
    if (logged_ && now - last_ < interval_) {
      ++unlogged_;
      return;
    }
    logged_ = true;
    last_ = now;
    unlogged = unlogged_;
    unlogged_ = 0;
  }
  if (unlogged == 0) return spdlog::warn("{}", message);
  spdlog::warn("{} (and {} more like it since the last such line)", message, unlogged);
}

uint64_t RateLimitedLog::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

}  // namespace mentat
