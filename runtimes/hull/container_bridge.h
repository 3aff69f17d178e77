// A bridge container's address (network "bridge"): the manifest's subnet and static ip checked
// before anything is made, then the bridge, its NAT and a leased address (leases.h).
#pragma once

#include <cstdint>

#include "apis/hull_manifest.h"
#include "runtimes/hull/container.h"
#include "runtimes/hull/state.h"
#include "runtimes/isolation/bridge.h"

namespace mentat::hull {

struct BridgeAddress {
  Ipv4Subnet subnet;
  uint32_t static_ip = 0;  // bridge.ip; 0: any free host address of the subnet
};

// bridge.subnet and bridge.ip, parsed; a static ip must be a host address of the subnet other
// than the bridge's. Exit code 3 naming the field.
Outcome<BridgeAddress> ParseBridgeAddress(const HullBridge& bridge);

// Makes the bridge and its NAT (their warnings go to the record) and leases an address in the
// name of this `hull run`; fills the record's lease_dir, ip and host_veth. A static ip leased by
// another container is kConflict.
Outcome<uint32_t> LeaseBridgeAddress(const HullManifest& m, const BridgeAddress& address, ContainerState& s);

}  // namespace mentat::hull
