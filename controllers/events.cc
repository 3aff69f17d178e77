#include "controllers/events.h"

#include <spdlog/spdlog.h>

namespace mentat {

void RecordEvent(Store* store, const Json& involved, const std::string& type,
                 const std::string& reason, const std::string& message, const std::string& source) {
  Json event = MakeEvent(involved, type, reason, message, source);
  // Two tries: a concurrent repeat of the same event may win the first.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto existing = store->Get(KeyOf(event));
    Result<Json> written;
    if (existing) {
      WriteOptions wo;
      wo.expected_revision = ResourceVersionOf(*existing);
      written = store->Put(RepeatEvent(*existing), wo);
    } else {
      WriteOptions wo;
      wo.create_only = true;
      written = store->Put(event, wo);
    }
    if (written) return;
    if (written.error().code() != Code::kConflict && written.error().code() != Code::kAlreadyExists) {
      spdlog::warn("recording event {} about {}: {}", reason, NameOf(involved), written.error().message());
      return;
    }
  }
}

Result<int> ExpireEvents(Store* store, std::chrono::seconds ttl) {
  MT_ASSIGN_OR_RETURN(auto events, store->List("Event", {}));
  auto cutoff = std::chrono::system_clock::now() - ttl;
  int n = 0;
  for (const auto& e : events.items) {
    auto last = ParseTime(e["spec"].value("lastTimestamp", ""));
    if (last && *last > cutoff) continue;
    auto st = store->Delete(KeyOf(e));
    if (st) ++n;
  }
  return n;
}

PeriodicRunnable EventExpiryRunnable(Store* store, std::chrono::seconds ttl,
                                     std::chrono::milliseconds interval) {
  PeriodicRunnable p;
  p.name = "event-expiry";
  p.interval = interval;
  p.run = [store, ttl] {
    if (auto n = ExpireEvents(store, ttl); !n) {
      spdlog::warn("expiring events: {}", n.error().message());
    } else if (*n) {
      spdlog::debug("expired {} events", *n);
    }
  };
  return p;
}

}  // namespace mentat
