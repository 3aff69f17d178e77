// Events the agent has to say about its allocations (Started, Restarted, Unhealthy, ...). They
// are queued under the agent's lock, where they happen, and sent later by the probe loop, so
// no API call is made while the lock is held.
#pragma once

#include <mutex>
#include <vector>

#include "apis/client.h"

namespace mentat {

class EventQueue {
 public:
  // `event` as MakeEvent (apis/event.h) builds it.
  void Add(Json event);
  // Sends what is queued; an event already stored under its name is repeated (its count).
  // Failures are logged and dropped: events are best effort.
  void Flush(ApiClient& client);

 private:
  std::mutex mu_;
  std::vector<Json> pending_;
};

}  // namespace mentat
