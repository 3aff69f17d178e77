// Point-in-time snapshots of the store (seed 002: daily snapshots, 7-day retention).
// Format, one JSON document per line:
//   {"format":"mentat-snapshot","version":1,"revision":R,"objects":N,"created":"..."}
//   N lines, one object each
//   {"sha256":"<hex of every byte above>"}
// A file that is truncated, corrupted or not a snapshot is refused before anything is written.
#pragma once

#include <chrono>
#include <string>

#include "apis/error.h"
#include "store/state_machine.h"

namespace mentat {

struct SnapshotInfo {
  int64_t revision = 0;
  int64_t objects = 0;
};

// Writes a consistent snapshot of `store` to `path` (via a temp file and rename).
Result<SnapshotInfo> SaveSnapshot(Snapshotter& store, const std::string& path);
// The snapshot text itself, for streaming over HTTP.
Result<std::string> SnapshotText(Snapshotter& store, SnapshotInfo* info);
// Checks a snapshot's framing and checksum.
Result<SnapshotInfo> VerifySnapshot(const std::string& text);
// Restores `path` into a new store at `dir`, which must not hold a store already.
Result<SnapshotInfo> RestoreSnapshot(const std::string& path, const std::string& dir);

// Writes a snapshot into `dir` named snapshot-<UTC time>-r<revision>.snap and keeps the
// newest `keep` of them.
Result<std::string> TakeScheduledSnapshot(Snapshotter& store, const std::string& dir, int keep);

}  // namespace mentat
