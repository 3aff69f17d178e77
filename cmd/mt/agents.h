// Reaching the agent that runs an allocation: its node's status.agentAddress, as `mt logs` and
// `mt exec` use it.
#pragma once

#include <string>

#include "apis/client.h"

namespace mentat::mt {

// The agent address of the node allocation `alloc` (in `ns`) is placed on. The server's error
// for the allocation itself (kNotFound when it does not exist); kUnavailable when it is not
// placed yet or its agent publishes no address.
Result<std::string> AgentAddress(ApiClient& server, const std::string& ns, const std::string& alloc);

// The last `lines` lines of one stream ("stdout" or "stderr") of allocation `alloc`'s log, read
// from its agent with the server's token and CA (`co`).
Result<std::string> AllocationLogTail(ApiClient& server, const ClientOptions& co,
                                      const std::string& ns, const std::string& alloc,
                                      const std::string& stream, int lines);

}  // namespace mentat::mt
