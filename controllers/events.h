// Recording Events from the control plane, straight into the store, and expiring them.
#pragma once

#include <chrono>
#include <string>

#include "apis/event.h"
#include "controllers/periodic.h"
#include "store/store.h"

namespace mentat {

// Records (or counts one more of) an event about `involved`. Failures are logged, never
// returned: an event is never worth failing a reconcile for.
void RecordEvent(Store* store, const Json& involved, const std::string& type,
                 const std::string& reason, const std::string& message, const std::string& source);

// Events are short-lived: deletes those that last happened more than `ttl` ago. Returns how
// many it deleted.
Result<int> ExpireEvents(Store* store, std::chrono::seconds ttl);
// ExpireEvents every `interval`, for the ControllerManager.
PeriodicRunnable EventExpiryRunnable(Store* store, std::chrono::seconds ttl,
                                     std::chrono::milliseconds interval);

}  // namespace mentat
