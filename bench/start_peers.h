// What the start-latency benches share: spawning a runtime, finding the moment its workload
// (busybox) has exec'd, and timing the peers (bubblewrap and runc) on the same root filesystem.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace mentat::bench {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b);

// fork+exec of argv with stdin/stdout/stderr on /dev/null.
pid_t Spawn(const std::vector<std::string>& argv);

// A process in the tree under `root` that runs busybox: its pid, or 0.
int FindBusybox(int root);

// Polls FindBusybox(root) until it finds one: its pid, or 0 after 10 s.
int WaitForBusybox(int root);

// `runs` starts of `bwrap <flags> --bind root / ... /bin/sleep 3600`, each timed from the spawn
// until sleep has exec'd, then killed. Empty when /usr/bin/bwrap is missing.
std::vector<double> TimeBwrap(const std::string& root, int runs, const std::vector<std::string>& flags);

// `runs` starts of `runc run` with the bundle `runc spec` makes (root read-only, /bin/sleep
// 3600), timed the same way, then killed and deleted. Empty when runc is missing or fails.
std::vector<double> TimeRunc(const std::string& root, const std::string& dir, int runs);

}  // namespace mentat::bench
