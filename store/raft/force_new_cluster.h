// --force-new-cluster: a cluster of one rebuilt from a surviving member's disk, after a
// majority of the members is lost for good. The unsafe operator action etcd has under the same
// name: writes that only the lost members held are gone, and the lost members must never come
// back with their old data (they would make a second cluster of the same name).
//
// The member first applies every entry its log holds as committed (no quorum is needed for
// that); then its Raft log is replaced by a snapshot at its applied index whose configuration
// is this member alone, at a term past any it saw, and the members record says the same. The
// server then starts as usual: the one voter elects itself and takes writes; `mt cluster add`
// grows it again.
#pragma once

#include <cstdint>
#include <string>

#include "apis/error.h"
#include "store/raft/cluster_config.h"
#include "store/rocksdb_state_machine.h"

namespace mentat::raft {

// Rewrites the member `self`'s disk under `state` as described above. Returns the index the new
// cluster goes on from.
Result<int64_t> ForceNewCluster(RocksStateMachine& state, const ClusterMemberSpec& self);

}  // namespace mentat::raft
