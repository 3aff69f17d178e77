// The server's periodic maintenance, as runnables of its ControllerManager (periodic.h): the
// manager runs them one at a time, and only while this server may write.
#pragma once

#include <chrono>
#include <string>

#include "apis/artifacts/store.h"
#include "controllers/periodic.h"
#include "store/state_machine.h"

namespace mentat {

// Compacts the watch history beyond the store's window (--history-*).
PeriodicRunnable CompactionRunnable(Compactor* store, std::chrono::seconds interval);
// Deletes artifacts no Service or Allocation names and nobody used within `grace`.
PeriodicRunnable ArtifactGcRunnable(Store* store, ArtifactStore* artifacts,
                                    std::chrono::seconds grace, std::chrono::seconds interval);
// Scheduled snapshots into `dir`, keeping the newest `keep` (seed 002: daily, keep 7); the
// first one at startup.
PeriodicRunnable SnapshotRunnable(Snapshotter* store, std::string dir, int keep,
                                  std::chrono::seconds interval);

}  // namespace mentat
