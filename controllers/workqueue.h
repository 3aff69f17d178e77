// A fair and stingy work queue (after client-go's): keys come out first in, first out; a key
// added many times while waiting is processed once; a key is never handed to two workers at
// once (added while processing, it is requeued when Done). Requeues back off per key
// exponentially, from 5 ms up to ~17 minutes, and all of a queue's requeues together are
// limited by a token bucket (client-go's default: 10 per second after a burst of 100).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace mentat {

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

  explicit WorkQueue(double retry_qps = 10, int retry_burst = 100)
      : retry_qps_(retry_qps), retry_burst_(retry_burst), tokens_(retry_burst) {}

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Clock::duration delay);
  // Requeues with this key's next backoff delay.
  void AddRateLimited(const std::string& key);
  // Resets the key's backoff after a successful reconcile.
  void Forget(const std::string& key);
  int Requeues(const std::string& key);

  // Blocks for the next key; nullopt once shut down.
  std::optional<std::string> Get();
  void Done(const std::string& key);
  void ShutDown();
  size_t Len();

  static constexpr auto kBaseDelay = std::chrono::milliseconds(5);
  static constexpr auto kMaxDelay = std::chrono::seconds(1000);

 private:
  void AddLocked(const std::string& key);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;       // queued or to be requeued
  std::set<std::string> processing_;  // handed out, not Done yet
  std::multimap<Clock::time_point, std::string> delayed_;
  // Each delayed key waits once, for its earliest deadline: a key asked for again later
  // (every reconcile that requeues it, say) does not pile up repeat runs.
  std::map<std::string, Clock::time_point> delayed_until_;
  std::map<std::string, int> failures_;
  const double retry_qps_;
  const int retry_burst_;
  double tokens_;
  Clock::time_point refilled_ = Clock::now();
  bool shutdown_ = false;
};

}  // namespace mentat
