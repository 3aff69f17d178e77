// Bridge networking for a container in its own network namespace (hull's network "bridge", seed
// 003): a Linux bridge on the host side (hull0, 10.88.0.1/24 by default), one veth pair per
// container with the host end enslaved to the bridge and the other end moved into the
// container's network namespace as eth0, addressed, up, with a default route via the bridge.
// The link work is rtnetlink through libnl-route-3 (no `ip` commands); NAT is nftables and the
// iptables FORWARD rule, exec'd, best effort. Everything here runs in the parent, never in a
// cloned child. Address leases are the caller's business (hull keeps them in its state dir).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

// An IPv4 subnet: network address and prefix, host byte order.
struct Ipv4Subnet {
  uint32_t network = 0;
  int prefix = 24;
  uint32_t Gateway() const { return network + 1; }      // the bridge's address
  uint32_t Broadcast() const { return network | (prefix == 32 ? 0 : (0xffffffffu >> prefix)); }
  bool Contains(uint32_t ip) const;
  std::string ToString() const;  // "10.88.0.0/24"
};

// "10.88.0.0/24" (host bits must be zero). kInvalidArgument naming the text.
Result<Ipv4Subnet> ParseSubnet(const std::string& cidr);
// "10.88.0.2". kInvalidArgument naming the text.
Result<uint32_t> ParseIpv4(const std::string& text);
std::string Ipv4ToString(uint32_t ip);

// The host end's name for a container address: "hullv" and 8 hex digits (13 characters, within
// IFNAMSIZ), unique while the address is leased.
std::string HostVethName(uint32_t ip);
// The prefix every hull host veth has, for tests and cleanup.
inline constexpr char kHostVethPrefix[] = "hullv";

// Creates the bridge `name` in the caller's network namespace if missing, gives it the subnet's
// gateway address (if it does not have it yet), and sets it up. Idempotent, and safe when two
// hulls race to create it (EEXIST is success).
Status EnsureBridge(const std::string& name, const Ipv4Subnet& subnet);

struct VethPlan {
  std::string bridge;     // enslave the host end here
  std::string host_name;  // HostVethName(ip)
  pid_t netns_pid = 0;    // the container end goes into this process's network namespace
  uint32_t ip = 0;        // the container's address in `subnet`
  Ipv4Subnet subnet;
  int mtu = 1500;
};

// Creates the pair, enslaves and raises the host end, then, inside the container's network
// namespace (entered by a short-lived thread), names its end eth0, addresses it, raises lo and
// eth0, and adds the default route via the gateway. On failure the pair is deleted again. The
// error names the step ("creating the veth pair hullv0a580002: File exists").
Status AttachVeth(const VethPlan& plan);

// Deletes a link by name in the caller's network namespace; a missing link is success (the
// kernel deletes a veth pair when the namespace holding one end dies).
Status DeleteLink(const std::string& name);

// Whether a link named `name` exists in the caller's network namespace.
bool LinkExists(const std::string& name);

// Outbound NAT for the subnet, idempotent: `table ip hull` with a postrouting nat chain and one
// masquerade rule per subnet (added only when missing), the iptables rule
// `-I FORWARD 1 -i <bridge> -j ACCEPT` (checked with -C first) and net.ipv4.ip_forward=1.
// nft and iptables are exec'd; when one is missing or fails, a warning is returned instead of an
// error: the bridge works without NAT, only not beyond the host.
std::vector<std::string> EnsureMasquerade(const std::string& bridge, const Ipv4Subnet& subnet);

}  // namespace mentat
