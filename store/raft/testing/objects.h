// For the replicated store's tests: the objects they write.
#pragma once

#include <string>

#include "apis/object.h"

namespace mentat::raft::testing {

// A Service `name` in namespace default with `count` allocations.
inline Json Svc(const std::string& name, int count) {
  return {{"kind", "Service"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"driver", "exec"}, {"count", count}}}};
}

}  // namespace mentat::raft::testing
