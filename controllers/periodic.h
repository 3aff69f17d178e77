// A periodic runnable: maintenance the ControllerManager runs on a timer rather than on store
// events (watch-history compaction, artifact GC, event expiry, scheduled snapshots). The
// manager runs them one at a time, on one thread, so no two overlap (a snapshot never races a
// compaction), and only while this server may write (leader_gate.h), unless it touches only
// this server's own data (`every_member`).
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace mentat {

struct PeriodicRunnable {
  std::string name;
  // From the end of one run to the start of the next.
  std::chrono::milliseconds interval{0};
  // First run at Start rather than one interval later.
  bool run_at_start = false;
  // One pass. It logs what it did and what failed: the next pass is the retry.
  std::function<void()> run;
  // Runs on every member of a replicated control plane, leader or not: it touches only this
  // server's own data (its watch history), never the replicated state.
  bool every_member = false;
};

}  // namespace mentat
