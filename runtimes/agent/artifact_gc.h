// Which unpacked artifact trees garbage collection removes: the policy alone, over a list of
// trees, so that it reads (and is tested) apart from the files. Never a tree in use; of the
// others, least recently used first.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace mentat {

struct TreeUse {
  std::string digest;  // "sha256:<hex>"
  uint64_t bytes = 0;
  uint64_t entries = 0;
  std::chrono::system_clock::time_point last_used;
  bool in_use = false;  // a task (running, recovering, restarting or about to start) names it
};

struct GcVictim {
  std::string digest;
  uint64_t bytes = 0;
  uint64_t entries = 0;
  std::chrono::system_clock::duration unused_for{};
};

// The periodic pass: every tree not in use whose last use is at least `grace` ago.
std::vector<GcVictim> UnusedPastGrace(const std::vector<TreeUse>& trees,
                                      std::chrono::system_clock::time_point now,
                                      std::chrono::system_clock::duration grace);

// Making room: trees not in use, least recently used first (whatever their age: the
// alternative is refusing a tree a task wants now), until the trees left take at most
// `max_bytes` and `max_entries`, or none is left to take.
std::vector<GcVictim> LeastRecentlyUsedUntil(const std::vector<TreeUse>& trees,
                                             std::chrono::system_clock::time_point now,
                                             uint64_t max_bytes, uint64_t max_entries);

}  // namespace mentat
