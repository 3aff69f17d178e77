// The agent's artifact cache: app rootfs archives that `mt apply` uploaded, fetched from the
// server once per node, checked against their digest, and unpacked under
// DIR/sha256/<hex>: one tree, shared read-only by every allocation that names the artifact.
// The trees are bounded: each by UnpackLimits, all together by a node budget, and the ones no
// task uses are garbage-collected, least recently used first.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "apis/artifacts/unpack.h"
#include "apis/error.h"
#include "apis/object.h"
#include "runtimes/agent/artifact_gc.h"

namespace mentat {

inline constexpr char kUnpackedBudgetMbFlag[] = "--unpacked-budget-mb";
inline constexpr char kUnpackedBudgetEntriesFlag[] = "--unpacked-budget-entries";
inline constexpr char kUnpackedGcGraceFlag[] = "--unpacked-gc-grace";

// What an operator sets (the agent's flags, cmd/mentat-agent/artifact_flags.h).
struct ArtifactLimits {
  UnpackLimits unpack;  // each artifact
  // All unpacked trees of the node together, with the fetches in progress (their archives
  // and what they unpacked so far). 0: the smaller of kAutoBudgetBytes and a quarter of the
  // filesystem that holds the cache (entries: of its inodes).
  uint64_t budget_bytes = 0;
  uint64_t budget_entries = 0;
  // A tree no task uses is removed once it has not been used for this long, so that a
  // rollback or a redeploy soon after finds it still here.
  std::chrono::seconds gc_grace{3600};
  // How often the agent collects garbage (the agent's loop, not the cache's).
  std::chrono::seconds gc_interval{60};
};
inline constexpr uint64_t kAutoBudgetBytes = uint64_t{20} << 30;
inline constexpr uint64_t kAutoBudgetEntries = 1000000;

// Streams the archive of a digest to `on_data` (false from it stops the transfer): the
// server's GET /v1/artifacts/DIGEST, or a test's files.
using ArtifactSource = std::function<Status(
    const std::string& digest, const std::function<bool(const char*, size_t)>& on_data)>;

// The digests of the trees the node's tasks use or are about to use: running, recovered from
// a handle, waiting to restart, or placed here and not started yet. nullopt while the caller
// cannot tell (before its first full list of allocations): then no tree is removed.
using ArtifactsInUse = std::function<std::optional<std::set<std::string>>()>;

struct ArtifactCacheOptions {
  std::string dir;  // holds sha256/ (the trees), used/ (when each was last used) and tmp/
  ArtifactSource source;
  ArtifactLimits limits;
  ArtifactsInUse in_use;  // unset: no tree is in use but those leased
  std::function<std::chrono::system_clock::time_point()> now = std::chrono::system_clock::now;
};

// What the cache holds, for the Node's status and the logs.
struct ArtifactUsage {
  uint64_t trees = 0;
  uint64_t bytes = 0;              // file data of the trees
  uint64_t entries = 0;            // entries of the trees
  uint64_t in_progress_bytes = 0;  // fetches and removals under way
  uint64_t budget_bytes = 0;
  uint64_t budget_entries = 0;
  uint64_t removed_trees = 0;  // since the agent started
  uint64_t removed_bytes = 0;
  uint64_t refused = 0;  // artifacts refused by a limit
  Json ToJson() const;
};

// What one garbage collection removed.
struct GcReport {
  std::vector<GcVictim> trees;
  std::vector<std::string> leftovers;  // names under tmp/ that no fetch or removal owned
};

class ArtifactCache {
 public:
  // Opens `opts.dir`, creating it. Leftovers of a crash (everything under tmp/, anything in
  // sha256/ that is not a tree) are removed and logged; the trees there are measured.
  static Result<std::unique_ptr<ArtifactCache>> Create(ArtifactCacheOptions opts);
  ~ArtifactCache();

  // A tree kept from garbage collection for as long as the lease is held: the caller holds
  // it until the task that uses the tree is one that `in_use` names.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    // The absolute directory of a layer holding the tree under app/, where a sandbox shows
    // it at /app. Callers only read it.
    const std::string& path() const { return path_; }

   private:
    friend class ArtifactCache;
    Lease(ArtifactCache* cache, std::string digest) : cache_(cache), digest_(std::move(digest)) {}
    void Release();
    ArtifactCache* cache_ = nullptr;
    std::string digest_;
    std::string path_;
  };

  // The tree of `digest` ("sha256:<hex>"), leased: fetched, verified and unpacked first if
  // this node does not have it. Callers asking for the same digest at once share one fetch.
  // Errors: kInvalidArgument when the archive breaks a rule or a limit (remembered: the same
  // digest is refused again without a fetch, as its content cannot change); kUnavailable when
  // the node's budget is full of trees in use, or the server did not give it (not
  // remembered: the next call tries again). No part of a refused tree is left on disk.
  Result<Lease> Ensure(const std::string& digest);

  // Removes the trees no task uses that have not been used for the grace period (and, if the
  // trees are over budget, the least recently used unused ones until they are not), and what
  // no fetch owns under tmp/. Logs each removal and why.
  GcReport CollectGarbage();

  ArtifactUsage Usage() const;
  const ArtifactLimits& limits() const { return opts_.limits; }
  uint64_t fetches() const;  // downloads started so far (for tests)

 private:
  struct Tree {
    uint64_t bytes = 0;
    uint64_t entries = 0;
    std::chrono::system_clock::time_point last_used;
  };
  // Space drawn from the budget by one fetch: its archive, then its tree.
  struct Reservation {
    std::string digest;
    uint64_t bytes = 0;
    uint64_t entries = 0;
  };
  struct Detached {  // a tree renamed under tmp/, to be removed off the lock
    GcVictim victim;
    std::string path;
    std::string why;
  };

  explicit ArtifactCache(ArtifactCacheOptions opts);
  Status Open();
  void ScanTrees();
  std::string TreePath(const std::string& digest) const;
  std::string StampPath(const std::string& digest) const;
  void Stamp(const std::string& digest, std::chrono::system_clock::time_point t);
  void Pin(const std::string& digest);
  void Unpin(const std::string& digest);

  Result<Lease> AwaitFetch(Lease lease);
  Status Fetch(const std::string& digest);
  Status Download(const std::string& digest, const std::string& to, Reservation& res);
  Status Commit(const std::string& digest, const std::string& tree, const UnpackedSize& size,
                Reservation& res);
  void RememberRefusal(const std::string& digest, const Error& e);
  Result<std::string> MakeWorkDir(const std::string& name);
  void DropWorkDir(const std::string& path);

  // The node budget (all locked: mu_ held).
  bool FitsLocked(uint64_t bytes, uint64_t entries) const;
  Status Reserve(Reservation& res, uint64_t bytes, uint64_t entries);
  void Unreserve(Reservation& res, uint64_t bytes, uint64_t entries);
  Error BudgetErrorLocked(const Reservation& res, uint64_t bytes, uint64_t entries) const;
  // Removes unused trees, least recently used first, until this fetch fits under the low
  // watermark; false if there was none to remove.
  bool MakeRoom(const Reservation& res, uint64_t bytes, uint64_t entries);
  // Garbage collection: which trees are used (pins, then `in_use`); the victims renamed under
  // tmp/ (gone from sha256/ at once), then removed off the lock.
  std::optional<std::vector<TreeUse>> TreeUsesLocked();
  std::vector<Detached> DetachLocked(const std::vector<GcVictim>& victims, const std::string& why);
  void Remove(std::vector<Detached> detached);
  std::vector<std::string> ClaimLeftoversLocked();

  ArtifactCacheOptions opts_;
  mutable std::mutex mu_;              // before the caller's in_use lock; never held while removing
  std::map<std::string, Tree> trees_;  // digest -> its tree on disk
  std::map<std::string, std::shared_future<Status>> in_flight_;
  std::set<std::string> work_dirs_;  // owned names under tmp/
  std::map<std::string, Error> refused_;
  std::deque<std::string> refused_order_;
  uint64_t tree_bytes_ = 0, tree_entries_ = 0;          // of trees_
  uint64_t reserved_bytes_ = 0, reserved_entries_ = 0;  // fetches in progress
  uint64_t removing_bytes_ = 0, removing_entries_ = 0;  // detached trees not removed yet
  uint64_t fetches_ = 0, removed_trees_ = 0, removed_bytes_ = 0, refusals_ = 0, detach_seq_ = 0;
  std::mutex pins_mu_;  // a leaf: Leases are released under any lock of the caller
  std::map<std::string, int> pins_;
};

// The artifact a task spec's rootfs names ("sha256:..."), or "".
std::string ArtifactOf(const Json& task_spec);

// When spec.rootfs names an artifact, makes sure the cache has it and puts its local layer
// directory in spec.rootfs instead, with spec.rootfsIsApp (its files are at /app). The lease
// keeps the tree until the caller records the task that uses it (empty when there is none).
// The error names the artifact and why it is not here.
Result<ArtifactCache::Lease> ResolveRootfs(ArtifactCache& cache, Json& spec);

}  // namespace mentat
