// The agent's artifact cache: app rootfs archives that `mt apply` uploaded, fetched from the
// server once per node, checked against their digest, and unpacked under
// DIR/sha256/<hex>: one tree, shared read-only by every allocation that names the artifact.
#pragma once

#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "apis/client.h"
#include "apis/error.h"
#include "apis/object.h"

namespace mentat {

// Limits on what one artifact may unpack to: a small archive must not fill the node's disk.
inline constexpr uint64_t kMaxUnpackedBytes = uint64_t{16} << 30;
inline constexpr uint64_t kMaxUnpackedEntries = 1000000;

// Unpacks the tar archive at `archive` (compressed as libarchive reads: zstd, gzip, ...) into
// `dest`, an existing empty directory. The whole archive is refused, with an error naming the
// entry, for: an absolute path or one with "..", a write through a symlink, a device node,
// FIFO, socket or hard link, more than `max_bytes` of file data or more than `max_entries`
// entries. Owners are not restored (all belongs to the agent's user), and setuid, setgid and
// sticky bits are dropped. On error `dest` may hold part of the tree: the caller removes it.
Status UnpackArchive(const std::string& archive, const std::string& dest,
                     uint64_t max_bytes = kMaxUnpackedBytes,
                     uint64_t max_entries = kMaxUnpackedEntries);

class ArtifactCache {
 public:
  // `dir` holds the unpacked trees (sha256/) and the work in progress (tmp/, emptied here:
  // what a crash left there is never used).
  ArtifactCache(std::string dir, std::shared_ptr<ApiClient> client);

  // The absolute directory of a layer holding the unpacked tree of `digest` ("sha256:<hex>")
  // under app/, where a sandbox shows it at /app: fetched,
  // verified and unpacked first if this node does not have it. Callers only read it. Callers
  // asking for the same digest at once share one fetch. A failure is not remembered: the
  // next call tries again.
  Result<std::string> Ensure(const std::string& digest);

  // Downloads started so far (for tests).
  uint64_t fetches() const;

 private:
  Result<std::string> Fetch(const std::string& digest);

  std::string dir_;
  std::shared_ptr<ApiClient> client_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_future<Result<std::string>>> in_flight_;
  uint64_t fetches_ = 0;
};

// When spec.rootfs names an artifact, makes sure the cache has it and puts its local layer
// directory in spec.rootfs instead, with spec.rootfsIsApp (its files are at /app). The error
// names the artifact and why it is not here.
Status ResolveRootfs(ArtifactCache& cache, Json& spec);

}  // namespace mentat
