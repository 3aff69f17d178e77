#include "runtimes/agent/artifact_gc.h"

#include <algorithm>

namespace mentat {
namespace {

GcVictim VictimOf(const TreeUse& t, std::chrono::system_clock::time_point now) {
  return {t.digest, t.bytes, t.entries,
          now > t.last_used ? now - t.last_used : std::chrono::system_clock::duration{}};
}

// The trees no task uses, least recently used first.
std::vector<const TreeUse*> UnusedOldestFirst(const std::vector<TreeUse>& trees) {
  std::vector<const TreeUse*> unused;
  for (const auto& t : trees) {
    if (!t.in_use) unused.push_back(&t);
  }
  std::stable_sort(unused.begin(), unused.end(),
                   [](const TreeUse* a, const TreeUse* b) { return a->last_used < b->last_used; });
  return unused;
}

}  // namespace

std::vector<GcVictim> UnusedPastGrace(const std::vector<TreeUse>& trees,
                                      std::chrono::system_clock::time_point now,
                                      std::chrono::system_clock::duration grace) {
  std::vector<GcVictim> out;
  for (const TreeUse* t : UnusedOldestFirst(trees)) {
    if (now - t->last_used >= grace) out.push_back(VictimOf(*t, now));
  }
  return out;
}

std::vector<GcVictim> LeastRecentlyUsedUntil(const std::vector<TreeUse>& trees,
                                             std::chrono::system_clock::time_point now,
                                             uint64_t max_bytes, uint64_t max_entries) {
  uint64_t bytes = 0, entries = 0;
  for (const auto& t : trees) {
    bytes += t.bytes;
    entries += t.entries;
  }
  std::vector<GcVictim> out;
  for (const TreeUse* t : UnusedOldestFirst(trees)) {
    if (bytes <= max_bytes && entries <= max_entries) break;
    out.push_back(VictimOf(*t, now));
    bytes -= t->bytes;
    entries -= t->entries;
  }
  return out;
}

}  // namespace mentat
