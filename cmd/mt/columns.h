// The table columns of each kind, shared by get, nodes, describe and apply --wait: what a
// Service's READY means, when a Node counts as Ready, how old an object is.
#pragma once

#include <string>
#include <vector>

#include "apis/object.h"

namespace mentat::mt {

std::vector<std::string> Header(const KindInfo& kind, bool wide);
std::vector<std::string> Row(const KindInfo& kind, const Json& obj, bool wide);

// "5s", "3m" since metadata.creationTimestamp (or any RFC 3339 time); "<unknown>" without one.
std::string Age(const Json& obj);
std::string AgeOf(const std::string& rfc3339);

// Ready when the agent says so and its last heartbeat is under 30 s old (the service
// controller's rule for placement); NotReady otherwise; Unknown before the first heartbeat.
std::string NodeStatus(const Json& node);

// The condition of `type` in status.conditions (case-insensitive), or null.
const Json* FindCondition(const Json& obj, const std::string& type);

// True when status describes the current spec: status.observedGeneration, where the kind
// has one, has caught up with metadata.generation.
bool StatusIsCurrent(const Json& obj);

// "Ready=False (PlacementFailed): cannot place ..." for the conditions that explain why an
// object is not ready: those that are True but bad (Degraded) or False but wanted (Ready).
std::string WhyNotReady(const Json& obj);

}  // namespace mentat::mt
