// What the Node kind (apis/kinds/node.cc) shows of a node, for mt's tables and describe.
#pragma once

#include <string>

#include "apis/object.h"

namespace mentat {

// Ready when the agent says so and its last heartbeat is under 30 s old (the service
// controller's rule for placement); NotReady otherwise; Unknown before the first heartbeat.
std::string NodeStatus(const Json& node);

}  // namespace mentat
