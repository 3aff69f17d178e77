#include "cmd/mt/agents.h"

namespace mentat::mt {

Result<std::string> AllocationLogTail(ApiClient& server, const std::string& ns,
                                      const std::string& alloc, const std::string& stream,
                                      int lines) {
  return server.GetRaw("/v1/allocations/" + alloc + "/logs?namespace=" + ns + "&stream=" + stream +
                       "&tail=" + std::to_string(lines));
}

}  // namespace mentat::mt
