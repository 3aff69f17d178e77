// The time index of a task's log: when each part of stdout.log / stderr.log was written, so that
// the two streams can be merged in the order they were written and `logs?since=` can start at a
// point in time, although the lines carry no timestamps.
//
// An index is a file of 16-byte records {time, size}: the log held `size` bytes (counted from
// the first byte ever written) by `time`, so a record covers the bytes from the previous
// record's size up to its own. Times are Unix nanoseconds, strictly increasing.
// Two kinds of writers make records:
//   - the log's own writer (the log relay, cmd/log-relay, or the docker driver's log pump) makes
//     one per chunk it appends (log_writer.h): the two indexes of a task then merge into the
//     exact order the writer read the chunks;
//   - otherwise (no relay, or hull with an operator's `binary:`, which writes its own files) the
//     agent samples each log's size about once a second (SampleLogSize): a merge is then right
//     to within that period.
// Agents before the relay wrote milliseconds: a time below kNsIndexFloor is read as ms.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mentat {

// How often the agent samples the logs of tasks without a relay.
inline constexpr int kLogIndexPeriodMs = 1000;

// One record, native order (the index never leaves the node). A record torn by a crash
// mid-append is a partial tail that readers ignore.
struct IndexRecord {
  int64_t time_ns;
  int64_t size;
};
static_assert(sizeof(IndexRecord) == 16);

// Times below this (year 2001 in ns, year 33658 in ms) are milliseconds of an older agent.
inline constexpr int64_t kNsIndexFloor = 1'000'000'000'000'000;
inline int64_t IndexTimeNs(int64_t t) { return t < kNsIndexFloor ? t * 1'000'000 : t; }

// Every whole record of `index_path`, times in ns (older ms records converted); empty when it
// does not exist.
std::vector<IndexRecord> ReadIndex(const std::string& index_path);

// Appends (now, size of `log_path`) to `index_path` if the log grew since the last record (or
// the index is empty). A log that shrank (started over) starts its index over too.
void SampleLogSize(const std::string& log_path, const std::string& index_path, int64_t now_ns);

// The offset in the log from which everything written at or after `since_ns` is shown: the size
// at the last record before it, moved back to the start of its line.
int64_t LogOffsetSince(const std::string& log_path, const std::string& index_path, int64_t since_ns);

}  // namespace mentat
