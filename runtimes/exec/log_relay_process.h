// A task's log relay (cmd/log-relay) as the drivers start and stop it: the process that owns
// the read ends of the workload's stdout and stderr pipes and is the only writer of its logs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "apis/error.h"
#include "apis/object.h"
#include "runtimes/logs/log_rotate.h"

namespace mentat {

// The relay binary: $MENTAT_LOG_RELAY, next to the running binary, the Bazel layout,
// /usr/lib/mentat (FindHelperBinary). Empty when it is nowhere.
std::string FindLogRelay();

struct LogRelay {
  int pid = 0;
  uint64_t start_ticks = 0;  // with pid, the relay's identity (a recycled pid is not it)
  // The write ends for the workload's stdout and stderr, close-on-exec: the caller dup's them
  // onto 1 and 2 of the workload and closes these once it has started.
  int out_fd = -1, err_fd = -1;
};

// Starts `relay_path` for the logs in `task_dir`: two pipes, their read ends the relay's fds 3
// and 4. The relay is a grandchild (double fork), so it is never this process's zombie, in a
// session of its own (no signal to the agent's process group reaches it), with an environment
// of PATH only (no MENTAT_TASK_ID: the orphan sweep never takes it for a task) and in this
// process's cgroup, not the task's (the task's OOM kill or cgroup kill does not take it).
// Returns once it reads the pipes (it closes its fd 5 then).
Result<LogRelay> StartLogRelay(const std::string& relay_path, const std::string& task_dir,
                               const LogLimits& limits);

// The handle state's record of a relay ("logRelayPid", "logRelayStartTicks").
void RecordLogRelay(const LogRelay& relay, Json& state);
bool HasLogRelay(const Json& state);

// Waits up to `timeout` for the relay recorded in `state` to exit by itself, which it does once
// it has written all its pipes held. True when it is gone (or there is none).
bool AwaitLogRelay(const Json& state, std::chrono::milliseconds timeout);

// Waits up to `grace` for the relay recorded in `state` to exit by itself (it does once every
// writer of its pipes is gone and it has written what they wrote), then kills it: something of
// the task (a daemonized grandchild, outside any cgroup) still holds a pipe. A relay that is
// gone, or whose pid now names another process, is left alone.
void StopLogRelay(const Json& state, std::chrono::milliseconds grace);

}  // namespace mentat
