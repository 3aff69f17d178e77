#include "runtimes/isolation/bridge.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

namespace mentat {
namespace {

struct SockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct LinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct AddrPut {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct NlAddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct RoutePut {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
using Sock = std::unique_ptr<nl_sock, SockFree>;
using Link = std::unique_ptr<rtnl_link, LinkPut>;
using NlAddr = std::unique_ptr<nl_addr, NlAddrPut>;

std::unexpected<Error> NlError(const std::string& what, int err) {
  return Internal(what + ": " + nl_geterror(err));
}

// A route netlink socket in the calling thread's network namespace.
Result<Sock> Connect() {
  Sock sk(nl_socket_alloc());
  if (!sk) return Internal("nl_socket_alloc failed");
  if (int err = nl_connect(sk.get(), NETLINK_ROUTE); err < 0) return NlError("connecting to rtnetlink", err);
  return sk;
}

NlAddr Ipv4Addr(uint32_t ip, int prefix) {
  uint32_t be = htonl(ip);
  NlAddr a(nl_addr_build(AF_INET, &be, sizeof(be)));
  if (a) nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

Result<int> IfIndex(nl_sock* sk, const std::string& name) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sk, 0, name.c_str(), &raw); err < 0) return NlError("finding link " + name, err);
  Link link(raw);
  return rtnl_link_get_ifindex(link.get());
}

// Sets the link up (and its mtu, when > 0).
Status LinkUp(nl_sock* sk, const std::string& name, int mtu) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sk, 0, name.c_str(), &raw); err < 0) return NlError("finding link " + name, err);
  Link orig(raw);
  Link change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (mtu > 0) rtnl_link_set_mtu(change.get(), static_cast<unsigned>(mtu));
  if (int err = rtnl_link_change(sk, orig.get(), change.get(), 0); err < 0) return NlError("setting " + name + " up", err);
  return {};
}

// Adds ip/prefix to the link; an address it already has is success.
Status AddAddress(nl_sock* sk, int ifindex, const std::string& ifname, uint32_t ip, int prefix) {
  std::unique_ptr<rtnl_addr, AddrPut> addr(rtnl_addr_alloc());
  NlAddr local = Ipv4Addr(ip, prefix);
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  rtnl_addr_set_family(addr.get(), AF_INET);
  rtnl_addr_set_local(addr.get(), local.get());
  rtnl_addr_set_prefixlen(addr.get(), prefix);
  int err = rtnl_addr_add(sk, addr.get(), 0);
  if (err < 0 && err != -NLE_EXIST) {
    return NlError("adding " + Ipv4ToString(ip) + "/" + std::to_string(prefix) + " to " + ifname, err);
  }
  return {};
}

Status AddDefaultRoute(nl_sock* sk, int ifindex, uint32_t gateway) {
  std::unique_ptr<rtnl_route, RoutePut> route(rtnl_route_alloc());
  NlAddr dst = Ipv4Addr(0, 0);
  NlAddr gw = Ipv4Addr(gateway, 32);
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  rtnl_route_set_dst(route.get(), dst.get());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();  // owned by the route once added
  rtnl_route_nh_set_ifindex(nh, ifindex);
  rtnl_route_nh_set_gateway(nh, gw.get());
  rtnl_route_add_nexthop(route.get(), nh);
  if (int err = rtnl_route_add(sk, route.get(), NLM_F_CREATE); err < 0 && err != -NLE_EXIST) {
    return NlError("adding the default route via " + Ipv4ToString(gateway), err);
  }
  return {};
}

// Inside the container's network namespace: eth0 addressed and up, lo up, the default route.
Status ConfigureContainerEnd(const VethPlan& plan) {
  MT_ASSIGN_OR_RETURN(Sock sk, Connect());
  MT_ASSIGN_OR_RETURN(int eth0, IfIndex(sk.get(), "eth0"));
  MT_RETURN_IF_ERROR(AddAddress(sk.get(), eth0, "eth0", plan.ip, plan.subnet.prefix));
  MT_RETURN_IF_ERROR(LinkUp(sk.get(), "lo", 0));
  MT_RETURN_IF_ERROR(LinkUp(sk.get(), "eth0", 0));
  return AddDefaultRoute(sk.get(), eth0, plan.subnet.Gateway());
}

// Runs argv (argv[0] looked up in the sbin directories), stdout into *out when given, stderr
// discarded. Returns the exit code, or -1 when the tool is not installed.
int RunTool(std::vector<std::string> argv, std::string* out = nullptr) {
  std::string path;
  for (const char* d : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    if (::access((d + argv[0]).c_str(), X_OK) == 0) {
      path = d + argv[0];
      break;
    }
  }
  if (path.empty()) return -1;
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(pipefd[1], 1);
    ::dup2(null, 2);
    ::execv(path.c_str(), args.data());
    _exit(127);
  }
  ::close(pipefd[1]);
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR);) {
    if (n > 0 && out) out->append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

bool Ipv4Subnet::Contains(uint32_t ip) const {
  uint32_t mask = prefix == 0 ? 0 : (0xffffffffu << (32 - prefix));
  return (ip & mask) == network;
}

std::string Ipv4Subnet::ToString() const { return Ipv4ToString(network) + "/" + std::to_string(prefix); }

Result<uint32_t> ParseIpv4(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return InvalidArgument(text + " is not an IPv4 address");
  return ntohl(a.s_addr);
}

Result<Ipv4Subnet> ParseSubnet(const std::string& cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) return InvalidArgument(cidr + " is not a CIDR subnet (a.b.c.d/N)");
  MT_ASSIGN_OR_RETURN(uint32_t net, ParseIpv4(cidr.substr(0, slash)));
  char* end = nullptr;
  long prefix = std::strtol(cidr.c_str() + slash + 1, &end, 10);
  if (*end != '\0' || prefix < 8 || prefix > 30) return InvalidArgument(cidr + ": the prefix must be 8..30");
  Ipv4Subnet s{net, static_cast<int>(prefix)};
  if (!s.Contains(net) || (net & ~(0xffffffffu << (32 - prefix))) != 0) {
    return InvalidArgument(cidr + " has host bits set");
  }
  return s;
}

std::string Ipv4ToString(uint32_t ip) {
  in_addr a{htonl(ip)};
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

std::string HostVethName(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%s%08x", kHostVethPrefix, ip);
  return buf;
}

Status EnsureBridge(const std::string& name, const Ipv4Subnet& subnet) {
  MT_ASSIGN_OR_RETURN(Sock sk, Connect());
  if (int err = rtnl_link_bridge_add(sk.get(), name.c_str()); err < 0 && err != -NLE_EXIST) {
    return NlError("creating the bridge " + name, err);
  }
  MT_ASSIGN_OR_RETURN(int index, IfIndex(sk.get(), name));
  MT_RETURN_IF_ERROR(AddAddress(sk.get(), index, name, subnet.Gateway(), subnet.prefix));
  // No mtu of its own: a bridge takes the smallest of its ports' (each veth has its container's).
  return LinkUp(sk.get(), name, 0);
}

Status AttachVeth(const VethPlan& plan) {
  MT_ASSIGN_OR_RETURN(Sock sk, Connect());
  MT_ASSIGN_OR_RETURN(int master, IfIndex(sk.get(), plan.bridge));
  {
    Link veth(rtnl_link_veth_alloc());
    if (!veth) return Internal("rtnl_link_veth_alloc failed");
    rtnl_link_set_name(veth.get(), plan.host_name.c_str());
    rtnl_link_set_mtu(veth.get(), static_cast<unsigned>(plan.mtu));
    // The peer is created directly in the container's namespace, so "eth0" never meets the
    // host's own interfaces.
    rtnl_link* peer = rtnl_link_veth_get_peer(veth.get());
    rtnl_link_set_name(peer, "eth0");
    rtnl_link_set_mtu(peer, static_cast<unsigned>(plan.mtu));
    rtnl_link_set_ns_pid(peer, plan.netns_pid);
    rtnl_link_put(peer);
    if (int err = rtnl_link_add(sk.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
      return NlError("creating the veth pair " + plan.host_name, err);
    }
  }
  auto undo = [&](Error e) -> Status {
    DeleteLink(plan.host_name);
    return std::unexpected(std::move(e));
  };
  auto host_end = IfIndex(sk.get(), plan.host_name);
  if (!host_end) return undo(host_end.error());
  if (int err = rtnl_link_enslave_ifindex(sk.get(), master, *host_end); err < 0) {
    return undo(NlError("attaching " + plan.host_name + " to " + plan.bridge, err).error());
  }
  if (auto st = LinkUp(sk.get(), plan.host_name, 0); !st) return undo(st.error());

  // setns(CLONE_NEWNET) moves only the calling thread: a thread of its own enters the
  // container's namespace, configures it, and ends there.
  const std::string ns_path = "/proc/" + std::to_string(plan.netns_pid) + "/ns/net";
  int nsfd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return undo(ErrnoError("opening " + ns_path, errno).error());
  Status inside;
  std::thread t([&] {
    if (::setns(nsfd, CLONE_NEWNET) != 0) {
      inside = ErrnoError("entering the container's network namespace", errno);
      return;
    }
    inside = ConfigureContainerEnd(plan);
  });
  t.join();
  ::close(nsfd);
  if (!inside) return undo(Error(inside.error().code(), "configuring eth0: " + inside.error().message()));
  return {};
}

Status DeleteLink(const std::string& name) {
  MT_ASSIGN_OR_RETURN(Sock sk, Connect());
  Link link(rtnl_link_alloc());
  rtnl_link_set_name(link.get(), name.c_str());
  int err = rtnl_link_delete(sk.get(), link.get());
  if (err < 0 && err != -NLE_NODEV && err != -NLE_OBJ_NOTFOUND) return NlError("deleting " + name, err);
  return {};
}

bool LinkExists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

std::vector<std::string> EnsureMasquerade(const std::string& bridge, const Ipv4Subnet& subnet) {
  std::vector<std::string> warnings;
  const std::string net = subnet.ToString();
  // `add` of an existing table or chain is a no-op in nft: only the rule needs a look first.
  int rc = RunTool({"nft", "add table ip hull"});
  if (rc == 0) rc = RunTool({"nft", "add chain ip hull postrouting { type nat hook postrouting priority 100 ; }"});
  std::string listing;
  if (rc == 0) rc = RunTool({"nft", "list chain ip hull postrouting"}, &listing);
  if (rc == 0 && listing.find("ip saddr " + net + " ") == std::string::npos) {
    rc = RunTool({"nft", "add rule ip hull postrouting ip saddr " + net + " ip daddr != " + net + " masquerade"});
  }
  if (rc != 0) {
    warnings.push_back(rc < 0 ? "nft is not installed: no masquerade for " + net
                              : "nft failed (exit " + std::to_string(rc) + "): no masquerade for " + net);
  }
  rc = RunTool({"iptables", "-w", "-C", "FORWARD", "-i", bridge, "-j", "ACCEPT"});
  if (rc == 1) rc = RunTool({"iptables", "-w", "-I", "FORWARD", "1", "-i", bridge, "-j", "ACCEPT"});
  if (rc != 0) {
    warnings.push_back(rc < 0 ? "iptables is not installed: no FORWARD rule for " + bridge
                              : "iptables failed (exit " + std::to_string(rc) + "): no FORWARD rule for " + bridge);
  }
  // Per network namespace: the one hull runs in.
  std::ofstream fwd("/proc/sys/net/ipv4/ip_forward");
  if (!(fwd << "1\n") || !fwd.flush()) warnings.push_back("cannot set net.ipv4.ip_forward=1");
  return warnings;
}

}  // namespace mentat
