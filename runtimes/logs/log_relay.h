// The loop of a task's log relay (cmd/log-relay): reads the workload's stdout and stderr pipes
// and hands every chunk to the task's log writer in the order it was read, until every writer
// of both pipes is gone.
//
// The merge is the order of the relay's reads. A pipe keeps no time of its writes, so writes to
// both streams that come faster than the relay wakes up (a few tens of microseconds) are found
// in both pipes at once and read stdout's first: within such a burst the order across streams
// is lost (each stream's own order never is), as with docker logs and kubectl logs.
#pragma once

#include <functional>
#include <string>

#include "apis/error.h"
#include "runtimes/logs/log_writer.h"

namespace mentat {

// The pipe size the relay asks for: a rotation's copy (several MB) never stalls the workload.
inline constexpr int kRelayPipeBytes = 1 << 20;

// Reads `out_fd` and `err_fd` (the read ends of the workload's stdout and stderr pipes) until
// both reach end of file, appending each chunk through `writer` (null: read and dropped, so
// that a relay which cannot write never blocks the workload). A failed write is reported to
// `on_error` and the relay goes on. Closes both descriptors.
void RunLogRelay(int out_fd, int err_fd, TaskLogWriter* writer,
                 const std::function<void(const std::string&)>& on_error);

}  // namespace mentat
