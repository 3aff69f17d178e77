#include "runtimes/agent/event_queue.h"

#include <spdlog/spdlog.h>

#include "apis/event.h"

namespace mentat {

void EventQueue::Add(Json event) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.push_back(std::move(event));
}

void EventQueue::Flush(ApiClient& client) {
  std::vector<Json> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(pending_);
  }
  for (const auto& e : batch) {
    RequestOptions ro;
    ro.ns = NamespaceOf(e);
    std::string name = NameOf(e);
    Result<Json> written;
    auto existing = client.Get("events", name, ro);
    if (existing) {
      written = client.Put("events", name, RepeatEvent(*existing).dump(), ro);
    } else {
      written = client.Put("events", name, e.dump(), ro);
    }
    if (!written) spdlog::debug("agent: event {}: {}", name, written.error().message());
  }
}

}  // namespace mentat
