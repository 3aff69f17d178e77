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

}  // namespace mentat
