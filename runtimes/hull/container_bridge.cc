#include "runtimes/hull/container_bridge.h"

#include <unistd.h>

#include <utility>

#include "runtimes/hull/failures.h"
#include "runtimes/hull/leases.h"

namespace mentat::hull {

Outcome<BridgeAddress> ParseBridgeAddress(const HullBridge& bridge) {
  BridgeAddress address;
  auto sn = ParseSubnet(bridge.subnet);
  if (!sn) return ManifestError("bridge.subnet", sn.error().message());
  const Ipv4Subnet& subnet = address.subnet = *sn;
  if (bridge.ip) {
    auto ip = ParseIpv4(*bridge.ip);
    if (!ip) return ManifestError("bridge.ip", ip.error().message());
    if (!subnet.Contains(*ip) || *ip == subnet.network || *ip == subnet.Gateway() || *ip == subnet.Broadcast()) {
      return ManifestError("bridge.ip", *bridge.ip + " is not a host address of " + subnet.ToString() +
                                            " other than the bridge's " + Ipv4ToString(subnet.Gateway()));
    }
    address.static_ip = *ip;
  }
  return address;
}

Outcome<uint32_t> LeaseBridgeAddress(const HullManifest& m, const BridgeAddress& address, ContainerState& s) {
  const Ipv4Subnet& subnet = address.subnet;
  if (auto st = EnsureBridge(m.bridge.name, subnet); !st) {
    return Runtime("bridge.name: " + st.error().message());
  }
  for (auto& w : EnsureMasquerade(m.bridge.name, subnet)) s.warnings.push_back(std::move(w));
  auto lease_dir = LeaseDirFor(m.bridge.name);
  if (!lease_dir) return Runtime("bridge: " + lease_dir.error().message());
  s.lease_dir = *lease_dir;
  LeaseRequest req{m.name, subnet, address.static_ip, ::getpid(), 0, /*delete_stale_veth=*/true};
  auto self = ReadProcStat(::getpid());
  if (!self) return Runtime("bridge: reading /proc/self/stat failed");
  req.owner_ticks = self->start_ticks;
  auto leased = AcquireLease(s.lease_dir, req);
  if (!leased) {
    if (leased.error().code() == Code::kConflict) {
      return Fail(kExitRuntime, Error(Code::kConflict, "bridge.ip: " + leased.error().message()));
    }
    return Runtime("bridge: " + leased.error().message());
  }
  const uint32_t ip = *leased;
  s.ip = Ipv4ToString(ip);
  s.host_veth = HostVethName(ip);
  return ip;
}

}  // namespace mentat::hull
