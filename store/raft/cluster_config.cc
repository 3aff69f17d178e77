#include "store/raft/cluster_config.h"

#include <charconv>
#include <set>

#include "apis/sha256.h"

namespace mentat::raft {
namespace {

Status CheckAddress(std::string_view address, std::string_view flag, std::string_view entry) {
  auto colon = address.rfind(':');
  auto bad = [&](std::string why) {
    return InvalidArgument(std::string(flag) + ": \"" + std::string(entry) + "\": " + why);
  };
  if (colon == std::string_view::npos || colon == 0) {
    return bad("the address must be HOST:PORT, such as 127.0.0.1:4648");
  }
  std::string_view port_text = address.substr(colon + 1);
  int port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
    return bad("the port must be 1-65535, got \"" + std::string(port_text) + "\"");
  }
  return {};
}

}  // namespace

bool IsMemberName(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

uint64_t MemberId(std::string_view name) {
  std::string hex = Sha256::Of(name).substr(7, 16);  // after "sha256:"
  uint64_t id = std::stoull(hex, nullptr, 16);
  return id == 0 ? 1 : id;
}

Result<std::vector<ClusterMemberSpec>> ParseInitialCluster(std::string_view text,
                                                           std::string_view flag) {
  if (text.empty()) {
    return InvalidArgument(std::string(flag) + " names no members (NAME=HOST:PORT,...)");
  }
  std::vector<ClusterMemberSpec> members;
  std::set<std::string> names, addresses;
  std::vector<std::string_view> entries;
  for (size_t start = 0;;) {
    size_t comma = text.find(',', start);
    entries.push_back(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  for (std::string_view entry : entries) {
    auto eq = entry.find('=');
    if (entry.empty() || eq == std::string_view::npos) {
      return InvalidArgument(std::string(flag) + ": \"" + std::string(entry) +
                             "\" is not NAME=HOST:PORT (members are separated by commas)");
    }
    ClusterMemberSpec m{std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)), 0};
    if (!IsMemberName(m.name)) {
      return InvalidArgument(std::string(flag) + ": \"" + m.name +
                             "\" is not a member name (a DNS label: a-z, 0-9, '-', at most 63)");
    }
    MT_RETURN_IF_ERROR(CheckAddress(m.peer_address, flag, entry));
    if (!names.insert(m.name).second) {
      return InvalidArgument(std::string(flag) + ": member \"" + m.name + "\" is named twice");
    }
    if (!addresses.insert(m.peer_address).second) {
      return InvalidArgument(std::string(flag) + ": two members have the address " + m.peer_address);
    }
    m.id = MemberId(m.name);
    members.push_back(std::move(m));
  }
  return members;
}

Result<ClusterMemberSpec> FindMember(const std::vector<ClusterMemberSpec>& members,
                                     std::string_view name) {
  for (const auto& m : members) {
    if (m.name == name) return m;
  }
  std::string listed;
  for (const auto& m : members) listed += (listed.empty() ? "" : ", ") + m.name;
  return InvalidArgument("--name \"" + std::string(name) + "\" is not among the members of "
                         "--initial-cluster (" + listed + ")");
}

}  // namespace mentat::raft
