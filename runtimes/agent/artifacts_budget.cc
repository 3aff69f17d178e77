// ArtifactCache's node budget and garbage collection: how a fetch draws on the budget, how
// room is made for it, and the periodic removal of trees no task uses (artifacts.h).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "apis/service.h"
#include "runtimes/agent/artifacts.h"

namespace mentat {
namespace fs = std::filesystem;
namespace {

std::string MiB(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string Ago(std::chrono::system_clock::duration d) {
  return FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

uint64_t Room(uint64_t budget, uint64_t taken) { return budget > taken ? budget - taken : 0; }

// Under pressure, trees are removed until all of them take at most this share of the budget
// (per cent), so that the next fetches fit without removing again (kubelet's low threshold).
constexpr uint64_t kLowWatermarkPercent = 80;

}  // namespace

bool ArtifactCache::FitsLocked(uint64_t bytes, uint64_t entries) const {
  const ArtifactLimits& l = opts_.limits;
  return tree_bytes_ + reserved_bytes_ + removing_bytes_ + bytes <= l.budget_bytes &&
         tree_entries_ + reserved_entries_ + removing_entries_ + entries <= l.budget_entries;
}

Status ArtifactCache::Reserve(Reservation& res, uint64_t bytes, uint64_t entries) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (FitsLocked(bytes, entries)) {
        res.bytes += bytes;
        res.entries += entries;
        reserved_bytes_ += bytes;
        reserved_entries_ += entries;
        return {};
      }
    }
    if (attempt == 0 && !MakeRoom(res, bytes, entries)) break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  return std::unexpected(BudgetErrorLocked(res, bytes, entries));
}

void ArtifactCache::Unreserve(Reservation& res, uint64_t bytes, uint64_t entries) {
  std::lock_guard<std::mutex> lock(mu_);
  bytes = std::min(bytes, res.bytes);
  entries = std::min(entries, res.entries);
  res.bytes -= bytes;
  res.entries -= entries;
  reserved_bytes_ -= bytes;
  reserved_entries_ -= entries;
}

Error ArtifactCache::BudgetErrorLocked(const Reservation& res, uint64_t bytes,
                                       uint64_t entries) const {
  const ArtifactLimits& l = opts_.limits;
  bool over_bytes = tree_bytes_ + reserved_bytes_ + removing_bytes_ + bytes > l.budget_bytes;
  std::string budget = over_bytes ? MiB(l.budget_bytes) + " (" + kUnpackedBudgetMbFlag + ")"
                                  : std::to_string(l.budget_entries) + " entries (" +
                                        kUnpackedBudgetEntriesFlag + ")";
  auto amount = [&](uint64_t b, uint64_t e) {
    return over_bytes ? MiB(b) : std::to_string(e) + " entries";
  };
  return Error(Code::kUnavailable,
               "the node's unpacked artifacts would go over their budget of " + budget + ": " +
                   std::to_string(trees_.size()) + " trees that tasks use take " +
                   amount(tree_bytes_, tree_entries_) + ", other fetches and removals " +
                   amount(reserved_bytes_ + removing_bytes_ - res.bytes,
                          reserved_entries_ + removing_entries_ - res.entries) +
                   ", this one " + amount(res.bytes + bytes, res.entries + entries) +
                   " so far, and no unused tree is left to remove (retried later)");
}

bool ArtifactCache::MakeRoom(const Reservation& res, uint64_t bytes, uint64_t entries) {
  std::vector<Detached> detached;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto uses = TreeUsesLocked();
    if (!uses) return false;
    const ArtifactLimits& l = opts_.limits;
    uint64_t max_bytes = Room(l.budget_bytes / 100 * kLowWatermarkPercent,
                              reserved_bytes_ + removing_bytes_ + bytes);
    uint64_t max_entries = Room(l.budget_entries / 100 * kLowWatermarkPercent,
                                reserved_entries_ + removing_entries_ + entries);
    detached = DetachLocked(LeastRecentlyUsedUntil(*uses, opts_.now(), max_bytes, max_entries),
                            "making room for " + res.digest + " within the node's budget (" +
                                kUnpackedBudgetMbFlag + ", " + kUnpackedBudgetEntriesFlag + ")");
  }
  bool removed = !detached.empty();
  Remove(std::move(detached));
  return removed;
}

std::optional<std::vector<TreeUse>> ArtifactCache::TreeUsesLocked() {
  // Pins first, then in_use: a lease released in between belongs to a task that in_use names
  // by then (the Lease's contract), and no lease is taken while mu_ is held.
  std::set<std::string> used;
  {
    std::lock_guard<std::mutex> lock(pins_mu_);
    for (const auto& [digest, n] : pins_) used.insert(digest);
  }
  if (opts_.in_use) {
    auto named = opts_.in_use();
    if (!named) return std::nullopt;
    used.insert(named->begin(), named->end());
  }
  auto now = opts_.now();
  std::vector<TreeUse> out;
  for (auto& [digest, t] : trees_) {
    bool in_use = used.count(digest) > 0;
    if (in_use) {  // a tree in use is used now: its grace starts over when its task goes
      t.last_used = now;
      Stamp(digest, now);
    }
    out.push_back({digest, t.bytes, t.entries, t.last_used, in_use});
  }
  return out;
}

std::vector<ArtifactCache::Detached> ArtifactCache::DetachLocked(
    const std::vector<GcVictim>& victims, const std::string& why) {
  std::vector<Detached> out;
  for (const auto& v : victims) {
    auto t = trees_.find(v.digest);
    if (t == trees_.end()) continue;
    std::string name = "gc-" + v.digest.substr(sizeof(kArtifactDigestPrefix) - 1, 16) + "-" +
                       std::to_string(++detach_seq_);
    std::string to = opts_.dir + "/tmp/" + name;
    bool moved = ::rename(TreePath(v.digest).c_str(), to.c_str()) == 0;
    if (!moved && errno != ENOENT) {
      spdlog::warn("agent: artifacts: cannot remove the tree of {}: rename: {}", v.digest,
                   std::strerror(errno));
      continue;
    }
    ::unlink(StampPath(v.digest).c_str());
    tree_bytes_ -= t->second.bytes;
    tree_entries_ -= t->second.entries;
    trees_.erase(t);
    if (!moved) continue;  // gone already
    removing_bytes_ += v.bytes;
    removing_entries_ += v.entries;
    work_dirs_.insert(name);
    out.push_back({v, to, why});
  }
  return out;
}

void ArtifactCache::Remove(std::vector<Detached> detached) {
  for (const auto& d : detached) {
    auto st = RemoveTree(d.path);
    if (st) {
      spdlog::info("agent: artifacts: removed the tree of {} ({} in {} entries, unused for {}): {}",
                   d.victim.digest, MiB(d.victim.bytes), d.victim.entries, Ago(d.victim.unused_for),
                   d.why);
    } else {
      // Left under tmp/, where the next collection tries again.
      spdlog::warn("agent: artifacts: removing the tree of {}: {}", d.victim.digest,
                   st.error().message());
    }
    std::lock_guard<std::mutex> lock(mu_);
    removing_bytes_ -= d.victim.bytes;
    removing_entries_ -= d.victim.entries;
    work_dirs_.erase(fs::path(d.path).filename().string());
    if (st) {
      ++removed_trees_;
      removed_bytes_ += d.victim.bytes;
    }
  }
}

std::vector<std::string> ArtifactCache::ClaimLeftoversLocked() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opts_.dir + "/tmp", ec)) {
    if (work_dirs_.insert(e.path().filename().string()).second) out.push_back(e.path().string());
  }
  return out;
}

GcReport ArtifactCache::CollectGarbage() {
  GcReport report;
  std::vector<Detached> detached;
  std::vector<std::string> leftovers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const ArtifactLimits& l = opts_.limits;
    if (auto uses = TreeUsesLocked()) {
      auto now = opts_.now();
      detached = DetachLocked(
          UnusedPastGrace(*uses, now, l.gc_grace),
          "no task has used it for " + Ago(l.gc_grace) + " (" + kUnpackedGcGraceFlag + ")");
      // Still over the budget (it was lowered since): the least recently used of the rest.
      std::erase_if(*uses, [&](const TreeUse& u) { return !trees_.count(u.digest); });
      auto over =
          DetachLocked(LeastRecentlyUsedUntil(*uses, now, Room(l.budget_bytes, reserved_bytes_),
                                              Room(l.budget_entries, reserved_entries_)),
                       std::string("the trees are over the node's budget (") +
                           kUnpackedBudgetMbFlag + ", " + kUnpackedBudgetEntriesFlag + ")");
      detached.insert(detached.end(), over.begin(), over.end());
    } else {
      spdlog::debug("agent: artifacts: no tree removed: which ones tasks use is not known yet");
    }
    leftovers = ClaimLeftoversLocked();
  }
  for (const auto& path : leftovers) {
    spdlog::info("agent: artifacts: removing leftover {} (no fetch or removal owns it)", path);
    DropWorkDir(path);
    report.leftovers.push_back(fs::path(path).filename().string());
  }
  for (const auto& d : detached) report.trees.push_back(d.victim);
  Remove(std::move(detached));
  return report;
}

}  // namespace mentat
