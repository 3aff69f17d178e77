// Parts of `mt describe` that other commands print too: an object's conditions and its recent
// Events, as tables (apply --wait and run show them when a service does not come up).
#pragma once

#include <cstddef>
#include <string>

#include "apis/client.h"

namespace mentat::mt {

// "Conditions:" and a table of status.conditions (type, status, reason, since, message).
std::string ConditionsText(const Json& obj);

// "Events:" and a table of the Events about `obj`, oldest first; only the last `limit` of them
// when limit > 0.
std::string EventsText(ApiClient& client, const Json& obj, size_t limit = 0);

}  // namespace mentat::mt
