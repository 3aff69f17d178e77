// Waiting for applied Services to come up, for `mt apply --wait` and `mt run`: a live line per
// service until each is Ready for its current spec and has stayed up, or until one fails.
//
// "Stayed up" is the rollout's own verdict (status.rollout Complete: every allocation Ready for
// deploy.min_healthy_time), or, on a service's first deploy (revision 1, none stable before)
// whose spec sets no min_healthy_time, every allocation seen Ready, with no restart, for
// kFirstDeployUpTime: a workload that crashes a moment after it starts is not called ready. A crash loop (an
// allocation restarted kCrashLoopRestarts times while waited for), a Failed allocation or a
// failed rollout ends the wait at once; so does the timeout. Either way it says why: the
// reason, the last lines of the allocation's stderr, the service's conditions and last events.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "apis/client.h"

namespace mentat::mt {

inline constexpr std::chrono::seconds kFirstDeployUpTime{3};
inline constexpr int kCrashLoopRestarts = 3;

struct ServiceToWait {
  std::string ns;
  std::string name;
};

// kExitOk once every service is up; kExitError (having said why on stderr) when one failed or
// `timeout`, counted from `start`, passed first.
int WaitForServices(ApiClient& client, const std::vector<ServiceToWait>& services,
                    std::chrono::milliseconds timeout, std::chrono::steady_clock::time_point start);

}  // namespace mentat::mt
