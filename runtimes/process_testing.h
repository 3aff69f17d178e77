// Helpers for the runtimes' tests that watch real processes: whether one is alive, which cgroup
// it is in, and waiting on a condition with a deadline (never a bare sleep).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

namespace mentat {

// True while `pid` exists and is not a zombie.
bool Alive(pid_t pid);

// Polls `cond` until it holds or `deadline` passes; returns its last value.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline);

// The cgroup of `pid` in the v1 hierarchy of `controller` (e.g. "/mentat/web-0-3f2a"), from
// /proc/<pid>/cgroup; "" when it has none.
std::string CgroupOf(pid_t pid, const std::string& controller);

}  // namespace mentat
