// What mt reads of an allocation's log outside `mt logs`: the server's
// /v1/allocations/NAME/logs, which it relays from the agent of the allocation's node.
#pragma once

#include <string>

#include "apis/client.h"

namespace mentat::mt {

// The last `lines` lines of one stream ("stdout" or "stderr") of allocation `alloc`'s log.
Result<std::string> AllocationLogTail(ApiClient& server, const std::string& ns,
                                      const std::string& alloc, const std::string& stream,
                                      int lines);

}  // namespace mentat::mt
