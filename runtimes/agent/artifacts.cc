#include "runtimes/agent/artifacts.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "apis/service.h"
#include "apis/sha256.h"

namespace mentat {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::system_clock;

std::string MiB(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string HexOf(const std::string& digest) {
  return digest.substr(sizeof(kArtifactDigestPrefix) - 1);
}

std::string Ago(Clock::duration d) {
  return FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

// A budget of 0 is automatic: the smaller of the fixed one and a quarter of the filesystem.
void ResolveAutoBudget(const std::string& dir, ArtifactLimits& l) {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    if (l.budget_bytes == 0) {
      l.budget_bytes =
          std::min<uint64_t>(kAutoBudgetBytes, uint64_t(vfs.f_blocks) * vfs.f_frsize / 4);
    }
    if (l.budget_entries == 0 && vfs.f_files > 0) {
      l.budget_entries = std::min<uint64_t>(kAutoBudgetEntries, uint64_t(vfs.f_files) / 4);
    }
  }
  if (l.budget_bytes == 0) l.budget_bytes = kAutoBudgetBytes;
  if (l.budget_entries == 0) l.budget_entries = kAutoBudgetEntries;
}

// Refused archives remembered, at most: a digest's content never changes, so neither does
// the verdict; the oldest are forgotten first.
constexpr size_t kMaxRemembered = 1024;

}  // namespace

// ---- Leases -------------------------------------------------------------------------------

ArtifactCache::Lease::Lease(Lease&& other) noexcept
    : cache_(other.cache_), digest_(std::move(other.digest_)), path_(std::move(other.path_)) {
  other.cache_ = nullptr;
}

ArtifactCache::Lease& ArtifactCache::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    cache_ = other.cache_;
    digest_ = std::move(other.digest_);
    path_ = std::move(other.path_);
    other.cache_ = nullptr;
  }
  return *this;
}

ArtifactCache::Lease::~Lease() { Release(); }

void ArtifactCache::Lease::Release() {
  if (cache_) cache_->Unpin(digest_);
  cache_ = nullptr;
}

void ArtifactCache::Pin(const std::string& digest) {
  std::lock_guard<std::mutex> lock(pins_mu_);
  ++pins_[digest];
}

void ArtifactCache::Unpin(const std::string& digest) {
  std::lock_guard<std::mutex> lock(pins_mu_);
  auto it = pins_.find(digest);
  if (it != pins_.end() && --it->second <= 0) pins_.erase(it);
}

// ---- Opening: the budget, and what a crash left ---------------------------------------------

ArtifactCache::ArtifactCache(ArtifactCacheOptions opts) : opts_(std::move(opts)) {}
ArtifactCache::~ArtifactCache() = default;

Result<std::unique_ptr<ArtifactCache>> ArtifactCache::Create(ArtifactCacheOptions opts) {
  std::error_code ec;
  opts.dir = fs::absolute(opts.dir, ec).lexically_normal().string();
  std::unique_ptr<ArtifactCache> cache(new ArtifactCache(std::move(opts)));
  MT_RETURN_IF_ERROR(cache->Open());
  return cache;
}

Status ArtifactCache::Open() {
  for (const char* sub : {"/tmp", "/sha256", "/used"}) {
    std::error_code ec;
    fs::create_directories(opts_.dir + sub, ec);
    if (ec) return Internal("creating " + opts_.dir + sub + ": " + ec.message());
  }
  // Fetches and removals a crash interrupted: none of it is ever used.
  std::error_code ec;
  std::vector<std::string> leftovers;
  for (const auto& e : fs::directory_iterator(opts_.dir + "/tmp", ec)) {
    leftovers.push_back(e.path().string());
  }
  for (const auto& path : leftovers) {
    spdlog::info(
        "agent: artifacts: removing leftover {} (a fetch or removal the last agent "
        "did not finish)",
        path);
    MT_RETURN_IF_ERROR(RemoveTree(path));
  }
  ResolveAutoBudget(opts_.dir, opts_.limits);
  const ArtifactLimits& l = opts_.limits;
  ScanTrees();
  spdlog::info(
      "agent: artifacts: {} unpacked trees, {} in {} entries; budget {} ({}), {} "
      "entries ({}); unused trees go after {} ({})",
      trees_.size(), MiB(tree_bytes_), tree_entries_, MiB(l.budget_bytes), kUnpackedBudgetMbFlag,
      l.budget_entries, kUnpackedBudgetEntriesFlag, Ago(l.gc_grace), kUnpackedGcGraceFlag);
  return {};
}

// Measures the trees under sha256/ and reads when each was last used; removes what is not a
// tree of ours (a name that is no digest, a layer without app/) and stamps without a tree.
void ArtifactCache::ScanTrees() {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(opts_.dir + "/sha256", ec)) {
    entries.push_back(e.path());
  }
  for (const auto& path : entries) {
    fs::directory_entry e(path);
    std::string digest = kArtifactDigestPrefix + e.path().filename().string();
    std::error_code tec;
    auto size = IsArtifactDigest(digest) && fs::is_directory(e.path() / "app", tec)
                    ? MeasureTree((e.path() / "app").string())
                    : Result<UnpackedSize>(InvalidArgument("not an unpacked tree"));
    if (!size) {
      spdlog::warn("agent: artifacts: removing {}: {}", e.path().string(), size.error().message());
      RemoveTree(e.path().string());
      continue;
    }
    struct stat st {};
    Clock::time_point last_used = opts_.now();
    if (::stat(StampPath(digest).c_str(), &st) == 0) {
      last_used = Clock::time_point(std::chrono::duration_cast<Clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    } else {
      // Unknown: counts as used now, so that a restart never shortens the grace.
      Stamp(digest, last_used);
    }
    trees_[digest] = {size->bytes, size->entries, last_used};
    tree_bytes_ += size->bytes;
    tree_entries_ += size->entries;
  }
  std::vector<fs::path> stamps;
  for (const auto& e : fs::directory_iterator(opts_.dir + "/used", ec)) stamps.push_back(e.path());
  for (const auto& path : stamps) {
    if (!trees_.count(kArtifactDigestPrefix + path.filename().string())) fs::remove(path, ec);
  }
}

std::string ArtifactCache::TreePath(const std::string& digest) const {
  return opts_.dir + "/sha256/" + HexOf(digest);
}

std::string ArtifactCache::StampPath(const std::string& digest) const {
  return opts_.dir + "/used/" + HexOf(digest);
}

// The stamp's mtime is when the tree was last used: it outlives an agent restart.
void ArtifactCache::Stamp(const std::string& digest, Clock::time_point t) {
  int fd = ::open(StampPath(digest).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  struct timespec times[2] = {{ns / 1000000000, ns % 1000000000},
                              {ns / 1000000000, ns % 1000000000}};
  ::futimens(fd, times);
  ::close(fd);
}

uint64_t ArtifactCache::fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetches_;
}

ArtifactUsage ArtifactCache::Usage() const {
  std::lock_guard<std::mutex> lock(mu_);
  ArtifactUsage u;
  u.trees = trees_.size();
  u.bytes = tree_bytes_;
  u.entries = tree_entries_;
  u.in_progress_bytes = reserved_bytes_ + removing_bytes_;
  u.budget_bytes = opts_.limits.budget_bytes;
  u.budget_entries = opts_.limits.budget_entries;
  u.removed_trees = removed_trees_;
  u.removed_bytes = removed_bytes_;
  u.refused = refusals_;
  return u;
}

Json ArtifactUsage::ToJson() const {
  return {{"trees", trees},
          {"bytes", bytes},
          {"entries", entries},
          {"inProgressBytes", in_progress_bytes},
          {"budgetBytes", budget_bytes},
          {"budgetEntries", budget_entries},
          {"removedTrees", removed_trees},
          {"removedBytes", removed_bytes},
          {"refused", refused}};
}

// ---- Ensure: a leased tree, fetched once -------------------------------------------------

Result<ArtifactCache::Lease> ArtifactCache::Ensure(const std::string& digest) {
  if (!IsArtifactDigest(digest)) {
    return InvalidArgument("\"" + digest + "\" is not an artifact digest");
  }
  // Pinned before anything else, under mu_: no collection decides meanwhile, and from here
  // on none removes the tree, whether it is here, being fetched, or fetched below.
  Lease lease(this, digest);
  std::promise<Status> promise;
  std::shared_future<Status> shared;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pin(digest);
    if (auto r = refused_.find(digest); r != refused_.end()) {
      return MakeError(r->second.code(),
                       r->second.message() + " (refused before: not fetched again)");
    }
    if (auto t = trees_.find(digest); t != trees_.end()) {
      struct stat st {};
      if (::stat(TreePath(digest).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        t->second.last_used = opts_.now();
        Stamp(digest, t->second.last_used);
        lease.path_ = TreePath(digest);
        return lease;
      }
      // Removed behind the agent's back: fetched again.
      tree_bytes_ -= t->second.bytes;
      tree_entries_ -= t->second.entries;
      trees_.erase(t);
    }
    if (auto it = in_flight_.find(digest); it != in_flight_.end()) {
      shared = it->second;
    } else {
      in_flight_[digest] = promise.get_future().share();
      ++fetches_;
    }
  }
  if (shared.valid()) {  // another caller fetches it: wait for that one
    MT_RETURN_IF_ERROR(shared.get());
  } else {
    Status st = Fetch(digest);
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_.erase(digest);
    }
    promise.set_value(st);
    MT_RETURN_IF_ERROR(st);
  }
  lease.path_ = TreePath(digest);
  return lease;
}

Result<std::string> ArtifactCache::MakeWorkDir(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string work = opts_.dir + "/tmp/" + name + "-XXXXXX";
  if (!::mkdtemp(work.data())) return ErrnoError("creating " + work, errno);
  work_dirs_.insert(fs::path(work).filename().string());
  return work;
}

void ArtifactCache::DropWorkDir(const std::string& path) {
  if (auto st = RemoveTree(path); !st) spdlog::warn("agent: artifacts: {}", st.error().message());
  std::lock_guard<std::mutex> lock(mu_);
  work_dirs_.erase(fs::path(path).filename().string());
}

void ArtifactCache::RememberRefusal(const std::string& digest, const Error& e) {
  if (e.code() != Code::kInvalidArgument) {  // the budget, the disk or the network: may pass later
    spdlog::warn("agent: artifact {} not fetched: {}", digest, e.message());
    return;
  }
  spdlog::warn("agent: artifact {} refused: {}", digest, e.message());
  std::lock_guard<std::mutex> lock(mu_);
  ++refusals_;
  if (refused_.emplace(digest, e).second) refused_order_.push_back(digest);
  if (refused_order_.size() > kMaxRemembered) {
    refused_.erase(refused_order_.front());
    refused_order_.pop_front();
  }
}

// Downloads, unpacks and names the tree, all under a work dir in tmp/ that goes whatever
// happens, drawing on the node's budget as it goes. A refused tree leaves nothing behind.
Status ArtifactCache::Fetch(const std::string& digest) {
  MT_ASSIGN_OR_RETURN(std::string work, MakeWorkDir(HexOf(digest)));
  Reservation res{digest};
  struct Cleanup {
    ArtifactCache* cache;
    std::string work;
    Reservation& res;
    ~Cleanup() {
      cache->DropWorkDir(work);
      cache->Unreserve(res, res.bytes, res.entries);
    }
  } cleanup{this, work, res};
  const std::string download = work + "/archive", tree = work + "/tree", app = tree + "/app";
  MT_RETURN_IF_ERROR(Download(digest, download, res));
  // A layer: the app's files under /app, where the sandbox shows them (seed 000: `rootfs:
  // ./.next/standalone` runs as /app/start.sh), over the base's root.
  if (::mkdir(tree.c_str(), 0755) != 0) return ErrnoError("creating " + tree, errno);
  if (::mkdir(app.c_str(), 0755) != 0) return ErrnoError("creating " + app, errno);
  auto size =
      UnpackArchive(download, app, opts_.limits.unpack,
                    [&](uint64_t bytes, uint64_t entries) { return Reserve(res, bytes, entries); });
  if (!size) {
    RememberRefusal(digest, size.error());
    return std::unexpected(size.error());
  }
  // The archive's space goes back to the budget as soon as it is no longer needed.
  struct stat st {};
  uint64_t archive_bytes = ::stat(download.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  ::unlink(download.c_str());
  Unreserve(res, std::min(archive_bytes, res.bytes), 0);
  return Commit(digest, tree, *size, res);
}

Status ArtifactCache::Download(const std::string& digest, const std::string& to, Reservation& res) {
  int fd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("creating " + to, errno);
  // No tar is much larger than its files: a header and padding per entry, at most.
  const UnpackLimits& limits = opts_.limits.unpack;
  const uint64_t max_archive = limits.max_bytes + limits.max_entries * 2048 + (1 << 20);
  Sha256 sha;
  uint64_t received = 0;
  Status stopped;
  auto got = opts_.source(digest, [&](const char* data, size_t n) {
    received += n;
    if (received > max_archive) {
      stopped = InvalidArgument("the archive is larger than " + MiB(max_archive) +
                                ", more than files within the limit per artifact (" +
                                kUnpackMaxMbFlag + ") can take");
      return false;
    }
    if (stopped = Reserve(res, n, 0); !stopped) return false;
    for (size_t off = 0; off < n;) {
      ssize_t w = ::write(fd, data + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        stopped = ErrnoError("writing " + to, errno);
        return false;
      }
      off += static_cast<size_t>(w);
    }
    sha.Update(data, n);
    return true;
  });
  ::close(fd);
  if (!stopped) {
    RememberRefusal(digest, stopped.error());
    return stopped;
  }
  if (!got) {
    return std::unexpected(Error(got.error().code(), "downloading it: " + got.error().message()));
  }
  std::string sum = sha.Finish();
  if (sum != digest) {
    return MakeError(Code::kUnavailable, "the server sent " + std::to_string(received) +
                                             " bytes that hash to " + sum + ", not to the digest");
  }
  return {};
}

// Names the tree (the caller's lease pins it) and moves its share of the reservation to it.
Status ArtifactCache::Commit(const std::string& digest, const std::string& tree,
                             const UnpackedSize& size, Reservation& res) {
  // The tree is whole on disk before it gets its name: a crash leaves no half tree behind it.
  int tfd = ::open(tree.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tfd >= 0) {
    ::syncfs(tfd);
    ::close(tfd);
  }
  ::chmod(tree.c_str(), 0755);
  const std::string final_path = TreePath(digest);
  if (::rename(tree.c_str(), final_path.c_str()) != 0) {
    // Another agent process on this data dir (there should be none) got there first.
    if (errno != ENOTEMPTY && errno != EEXIST) return ErrnoError("storing " + final_path, errno);
  }
  // The name itself is not fsynced: if a crash loses it, the tree is under tmp/, which the
  // next start empties, and the artifact is fetched again.
  {
    std::lock_guard<std::mutex> lock(mu_);
    Tree& t = trees_[digest];
    t = {size.bytes, size.entries, opts_.now()};
    tree_bytes_ += size.bytes;
    tree_entries_ += size.entries;
    Stamp(digest, t.last_used);
  }
  Unreserve(res, res.bytes, res.entries);
  spdlog::info("agent: artifact {} unpacked in {}: {} in {} entries", digest, final_path,
               MiB(size.bytes), size.entries);
  return {};
}

// ---- ResolveRootfs ------------------------------------------------------------------------

std::string ArtifactOf(const Json& spec) {
  if (!spec.is_object() || !spec.contains("rootfs") || !spec["rootfs"].is_string()) return "";
  std::string rootfs = spec["rootfs"].get<std::string>();
  return rootfs.rfind(kArtifactDigestPrefix, 0) == 0 ? rootfs : "";
}

Result<ArtifactCache::Lease> ResolveRootfs(ArtifactCache& cache, Json& spec) {
  std::string digest = ArtifactOf(spec);
  if (digest.empty()) return ArtifactCache::Lease();
  auto lease = cache.Ensure(digest);
  if (!lease) {
    return std::unexpected(Error(lease.error().code(),
                                 "cannot fetch rootfs " + digest + ": " + lease.error().message()));
  }
  spec["rootfs"] = lease->path();
  spec["rootfsIsApp"] = true;  // the tree sits at /app in its layer
  return lease;
}

}  // namespace mentat
