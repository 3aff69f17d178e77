// A cluster's members as the operator names them: `--initial-cluster
// n1=127.0.0.1:4648,n2=127.0.0.1:5648,n3=127.0.0.1:6648`, the same list given to every member.
// A member's Raft id is derived from its name alone (MemberId), so the order of the list and
// the machine it is read on do not matter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "apis/error.h"

namespace mentat::raft {

struct ClusterMemberSpec {
  std::string name;          // a DNS label: n1, server-a
  std::string peer_address;  // host:port of its peer port
  uint64_t id = 0;           // MemberId(name)
};

// Whether `name` may name a member: a DNS label (a-z, 0-9, '-', at most 63 characters).
bool IsMemberName(std::string_view name);

// The first 8 bytes of SHA-256 of the name, never 0 (Raft's "none").
uint64_t MemberId(std::string_view name);

// Parses NAME=HOST:PORT entries separated by commas. kInvalidArgument names `flag` and the
// entry: an empty list, a name that is not a DNS label, a name given twice, an address without
// a port or with one outside 1-65535, two members on one address.
Result<std::vector<ClusterMemberSpec>> ParseInitialCluster(std::string_view text,
                                                           std::string_view flag = "--initial-cluster");

// The member named `name` in `members`; kInvalidArgument naming both flags when it is absent.
Result<ClusterMemberSpec> FindMember(const std::vector<ClusterMemberSpec>& members,
                                     std::string_view name);

}  // namespace mentat::raft
