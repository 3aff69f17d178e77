// Bridge address leases (seed 003, "State & Logs"): one O_EXCL file per leased address,
// <lease dir>/leases/<ip>, holding "NAME PID START_TICKS" of its owner: the container's PID 1
// once it runs, the starting `hull run` before. A lease whose owner is gone (no such pid, or
// one with another start time) is stale and is reclaimed by the next allocation. Every change
// (allocation, reclaim, a new owner, release) holds an flock on <lease dir>/leases.lock.
//
// The lease directory is host-wide, per network namespace and bridge (LeaseDirFor): the bridge
// and the veth names are the namespace's, not a state directory's, so two state directories
// (sudo and sudo -E, the agent's) share one set of leases and never hand out one address twice.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "apis/error.h"
#include "runtimes/hull/state.h"
#include "runtimes/isolation/bridge.h"

namespace mentat::hull {

// "$HULL_LEASE_ROOT/net-<inode of our network namespace>/<bridge>", HULL_LEASE_ROOT defaulting
// to /run/hull. kInternal when the network namespace cannot be read.
Result<std::string> LeaseDirFor(const std::string& bridge);

struct LeaseRequest {
  std::string name;       // the container
  Ipv4Subnet subnet;
  uint32_t static_ip = 0;  // bridge.ip, or 0: the next free address from .2
  pid_t owner = 0;         // who holds it for now (the running hull)
  uint64_t owner_ticks = 0;
  // When a stale lease is reclaimed, delete its host veth (HostVethName) too, under the lock:
  // the one moment its previous holder is proven gone. Only in the lease dir's own namespace.
  bool delete_stale_veth = false;
};

// Takes a lease. kConflict when the static address is leased by a live container (the message
// names it), kUnavailable when the subnet has no free address.
Result<uint32_t> AcquireLease(const std::string& lease_dir, const LeaseRequest& request);

// Replaces the lease's owner (the container's PID 1 once it exists): under the lock, written to
// a temporary file and renamed over the lease, so no reader ever sees it empty.
Status RecordLeaseOwner(const std::string& lease_dir, uint32_t ip, const std::string& name, pid_t pid,
                        uint64_t ticks);

// Removes leases/<ip> if `name` with `pid` holds it: a lease reclaimed since belongs to another
// container now (or to a new run of the same name). True when it was removed. `host_veth`, when
// given, is deleted first, under the same lock (nobody can lease the address and make a veth of
// that name in between).
bool ReleaseLease(const std::string& lease_dir, const std::string& ip, const std::string& name, pid_t pid,
                  const std::string& host_veth = "");

// An exited container's network: its host veth if the kernel has not removed it yet (it does
// when the container's network namespace dies), then its lease. Nothing when the address was
// reclaimed meanwhile: the veth of that name is the new holder's. The veth is deleted only from
// the network namespace the lease dir belongs to. Best effort.
void ReleaseNetwork(const StateDir& dir, const ContainerState& s);

}  // namespace mentat::hull
