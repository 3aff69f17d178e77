// What get, nodes, describe and apply --wait read of an object's status: its age, a node's
// readiness, conditions and why an object is not ready. The table columns themselves are
// registered with each kind (apis/kinds/).
#pragma once

#include <string>
#include <vector>

#include "apis/kind_registry.h"
#include "apis/kinds/node.h"
#include "apis/object.h"

namespace mentat::mt {

// Age, AgeOf (apis/kind_registry.h) and NodeStatus (apis/kinds/node.h), as mt's tables use them.
using ::mentat::Age;
using ::mentat::AgeOf;
using ::mentat::NodeStatus;

// The condition of `type` in status.conditions (case-insensitive), or null.
const Json* FindCondition(const Json& obj, const std::string& type);

// True when status describes the current spec: status.observedGeneration, where the kind
// has one, has caught up with metadata.generation.
bool StatusIsCurrent(const Json& obj);

// "Ready=False (PlacementFailed): cannot place ..." for the conditions that explain why an
// object is not ready: those that are True but bad (Degraded) or False but wanted (Ready).
std::string WhyNotReady(const Json& obj);

}  // namespace mentat::mt
