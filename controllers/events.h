// Recording Events from the control plane, straight into the store.
#pragma once

#include <string>

#include "apis/event.h"
#include "store/store.h"

namespace mentat {

// Records (or counts one more of) an event about `involved`. Failures are logged, never
// returned: an event is never worth failing a reconcile for.
void RecordEvent(Store* store, const Json& involved, const std::string& type,
                 const std::string& reason, const std::string& message, const std::string& source);

}  // namespace mentat
