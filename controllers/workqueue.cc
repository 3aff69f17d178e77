#include "controllers/workqueue.h"

#include <algorithm>

namespace mentat {

void WorkQueue::AddLocked(const std::string& key) {
  if (shutdown_ || dirty_.count(key)) return;
  dirty_.insert(key);
  if (processing_.count(key)) return;  // requeued by Done
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, Clock::duration delay) {
  if (delay <= Clock::duration::zero()) return Add(key);
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  auto when = Clock::now() + delay;
  auto it = delayed_until_.find(key);
  if (it != delayed_until_.end()) {
    if (it->second <= when) return;  // already due sooner
    auto range = delayed_.equal_range(it->second);
    for (auto d = range.first; d != range.second; ++d) {
      if (d->second == key) {
        delayed_.erase(d);
        break;
      }
    }
  }
  delayed_.emplace(when, key);
  delayed_until_[key] = when;
  cv_.notify_one();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  Clock::duration delay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    int n = failures_[key]++;
    auto d = kBaseDelay * (int64_t{1} << std::min(n, 30));
    delay = std::min<Clock::duration>(d, kMaxDelay);
    // The overall bucket: however many keys fail at once, retries go out at no more than
    // retry_qps (after a burst), so a failing dependency is not hammered.
    auto now = Clock::now();
    double elapsed = std::chrono::duration<double>(now - refilled_).count();
    refilled_ = now;
    tokens_ = std::min(static_cast<double>(retry_burst_), tokens_ + elapsed * retry_qps_);
    tokens_ -= 1;  // may go negative: a reservation further in the future
    if (tokens_ < 0) {
      auto wait = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / retry_qps_));
      delay = std::max(delay, wait);
    }
  }
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
}

int WorkQueue::Requeues(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (shutdown_) return std::nullopt;
    auto now = Clock::now();
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
      std::string key = delayed_.begin()->second;
      delayed_.erase(delayed_.begin());
      delayed_until_.erase(key);
      AddLocked(key);
    }
    if (!queue_.empty()) {
      std::string key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return key;
    }
    if (delayed_.empty()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, delayed_.begin()->first);
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) && !shutdown_) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

size_t WorkQueue::Len() {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace mentat
