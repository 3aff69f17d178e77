// Processes a crashed agent started but never recorded. The agent writes a `starting` marker
// (the task id) into the task's directory before a driver starts it, and removes it once the
// task's handle is persisted. Every workload carries MENTAT_TASK_ID=<task id> in its
// environment. A marker left behind by a crash means a process may run that no handle knows:
// the restarted agent finds it by that variable and kills it before starting the task again,
// so a slot never runs twice.
#pragma once

#include <string>

namespace mentat {

inline constexpr const char* kTaskIdEnv = "MENTAT_TASK_ID";
inline constexpr const char* kStartingMarker = "starting";

// Kills (SIGKILL, with their process groups) the processes whose environment holds
// MENTAT_TASK_ID=task_id, except `keep_pid` (the recorded one, or 0) and the processes under it
// (a sandbox's or hull container's workload runs under its recorded PID 1). Returns how many.
int KillUnrecordedProcesses(const std::string& task_id, int keep_pid);

}  // namespace mentat
