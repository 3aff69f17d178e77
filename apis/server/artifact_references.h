// Which artifacts the server's objects name: the rootfs digests of a spec, and of every Service
// and Allocation in the store. Garbage collection spares what they name; a node may read an
// artifact only if one of its allocations names it.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "store/store.h"

namespace mentat {

// The artifact digests a spec names as a rootfs, at any depth.
std::set<std::string> ArtifactsNamedBy(const Json& spec);

// What refers to each artifact: digest -> "service NS/NAME" and "allocation NS/NAME", from
// every rootfs of every Service and Allocation in the store.
Result<std::map<std::string, std::vector<std::string>>> ArtifactReferences(Store& store);

}  // namespace mentat
