#include "cmd/mentat-server/maintenance.h"

#include <set>

#include <spdlog/spdlog.h>

#include "apis/server/artifact_references.h"
#include "store/snapshot.h"

namespace mentat {

PeriodicRunnable CompactionRunnable(Compactor* store, std::chrono::seconds interval) {
  // Each member keeps its own watch history: every member compacts its own.
  return {"compaction", interval, false,
          [store] {
            if (auto r = store->CompactToWindow(); !r) {
              spdlog::warn("compaction: {}", r.error().message());
            }
          },
          /*every_member=*/true};
}

PeriodicRunnable ArtifactGcRunnable(Store* store, ArtifactStore* artifacts,
                                    std::chrono::seconds grace, std::chrono::seconds interval) {
  return {"artifact-gc", interval, false, [store, artifacts, grace] {
            auto refs = ArtifactReferences(*store);
            if (!refs) {
              spdlog::warn("artifact garbage collection: {}", refs.error().message());
              return;
            }
            std::set<std::string> referenced;
            for (const auto& [digest, by] : *refs) referenced.insert(digest);
            auto deleted = artifacts->CollectGarbage(referenced, grace);
            if (!deleted) {
              spdlog::warn("artifact garbage collection: {}", deleted.error().message());
              return;
            }
            for (const auto& d : *deleted) {
              spdlog::info("artifact {} deleted: no Service or Allocation names it", d);
            }
          }};
}

PeriodicRunnable SnapshotRunnable(Snapshotter* store, std::string dir, int keep,
                                  std::chrono::seconds interval) {
  return {"scheduled-snapshot", interval, true, [store, dir, keep] {
            auto path = TakeScheduledSnapshot(*store, dir, keep);
            if (path) {
              spdlog::info("snapshot written to {}", *path);
            } else {
              spdlog::error("scheduled snapshot failed: {}", path.error().message());
            }
          }};
}

}  // namespace mentat
