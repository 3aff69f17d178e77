// The time index of a task's log: when each part of stdout.log / stderr.log was written, so
// that `logs?since=` can start at a point in time although the lines carry no timestamps.
//
// The workload writes its log file directly (the exec driver hands it the file as stdout), so
// the agent never sees individual lines. Rather than pump every byte through the agent (which
// would make a busy or a restarting agent stall or lose the workload's output), the agent's
// probe loop samples each log's size about once a second and appends (unix ms, size) to
// stdout.idx / stderr.idx when it grew. Bytes past the size of the last sample taken before T
// were written after that sample, so starting there never misses output written at or after T;
// it may also show what was written up to one sampling period (about 1 s) before T, and, after
// an agent restart, what was written while the agent was down.
#pragma once

#include <cstdint>
#include <string>

namespace mentat {

// How often the agent samples.
inline constexpr int kLogIndexPeriodMs = 1000;

// Appends (now, size of `log_path`) to `index_path` if the log grew since the last record (or
// the index is empty). A log that shrank (started over) starts its index over too.
void SampleLogSize(const std::string& log_path, const std::string& index_path, int64_t now_ms);

// The offset in the log from which everything written at or after `since_ms` is shown: the size
// at the last sample taken before it, moved back to the start of its line.
int64_t LogOffsetSince(const std::string& log_path, const std::string& index_path, int64_t since_ms);

}  // namespace mentat
