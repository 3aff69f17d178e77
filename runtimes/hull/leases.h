// Bridge address leases (seed 003, "State & Logs"): one O_EXCL file per leased address,
// $STATE_DIR/leases/<ip>, holding "NAME PID START_TICKS" of its owner: the container's PID 1
// once it runs, the starting `hull run` before. A lease whose owner is gone (no such pid, or
// one with another start time) is stale and is reclaimed by the next allocation. Allocation and
// reclaim hold an flock on $STATE_DIR/leases.lock, so two hulls never reclaim the same file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "apis/error.h"
#include "runtimes/hull/state.h"
#include "runtimes/isolation/bridge.h"

namespace mentat::hull {

struct LeaseRequest {
  std::string name;       // the container
  Ipv4Subnet subnet;
  uint32_t static_ip = 0;  // bridge.ip, or 0: the next free address from .2
  pid_t owner = 0;         // who holds it for now (the running hull)
  uint64_t owner_ticks = 0;
};

// Takes a lease. kConflict when the static address is leased by a live container (the message
// names it), kUnavailable when the subnet has no free address.
Result<uint32_t> AcquireLease(const StateDir& dir, const LeaseRequest& request);

// Rewrites the lease's owner (the container's PID 1 once it exists).
Status RecordLeaseOwner(const StateDir& dir, uint32_t ip, const std::string& name, pid_t pid, uint64_t ticks);

// Removes leases/<ip> if `name` with `pid` holds it: a lease reclaimed since belongs to another
// container now (or to a new run of the same name). True when it was removed.
bool ReleaseLease(const StateDir& dir, const std::string& ip, const std::string& name, pid_t pid);

// An exited container's network: its lease, and then its host veth if the kernel has not
// removed it yet (it does when the container's network namespace dies). Nothing when the
// address was reclaimed meanwhile: the veth of that name is the new holder's. Best effort.
void ReleaseNetwork(const StateDir& dir, const ContainerState& s);

}  // namespace mentat::hull
