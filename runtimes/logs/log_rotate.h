// Log rotation that never moves a byte under a reader or a writer.
//
// stdout.log and stderr.log are appended through descriptors opened O_APPEND, by the task's log
// relay (cmd/log-relay), which rotates them itself, or, without one, by the workload, and the
// agent rotates them (the agent never sits in the data path, so a busy or restarting agent
// cannot stall or lose output). Rename-and-reopen rotation would lose what a workload writes to
// the old file, and copytruncate what is written between the copy and the truncate. Instead,
// when the live part of a log grows past `max_file_bytes`, its oldest part is copied into
// stdout.log.1 (shifting .1 to .2, and so on up to `max_files`), then punched out of stdout.log
// (fallocate PUNCH_HOLE): the blocks are freed, but every offset stays where it was. So:
//   - the writer keeps appending to the same file, and nothing it writes is ever lost;
//   - a `logs -f` reader's byte offset and the time index (log_index.h) stay valid;
//   - disk use stays under about (max_files + 1) x max_file_bytes per stream.
// stdout.log is then a sparse file whose start reads as zeros: readers begin at LogDataStart.
// The archives are contiguous: .1 ends where the live part starts, .2 where .1 starts, and so
// on, so a byte offset can still be read from them (ReadLog).
// On a filesystem without hole punching the live file is copied and truncated instead, and
// offsets start over (readers treat a file that shrank as new).
#pragma once

#include <cstdint>
#include <string>

#include "apis/error.h"

namespace mentat {

struct LogLimits {
  int64_t max_file_bytes = 10 << 20;  // the live part of a log rotates past this
  int max_files = 3;                  // rotated files kept: stdout.log.1 (newest) .. .N
};

// The first offset of `fd` that holds data (not a punched hole); the size when it is all hole.
int64_t LogDataStart(int fd);

// Reads `log_path` from logical `*offset` (bytes ever written) on, at most about `limit` bytes,
// and advances `*offset` past what it returns. An offset that rotation moved to the archives is
// read from them, so a follower that fell behind a rotation misses nothing the archives still
// hold; one older than every archive moves up to the oldest line kept. A file that shrank (a
// new allocation in the slot, or the copy-and-truncate fallback) is read from its start.
std::string ReadLog(const std::string& log_path, int64_t* offset, size_t limit = 8 << 20);

// The last `lines` lines of the log (from the archives too when the live part has fewer);
// `*end` is set to the offset just past them, where a follower continues.
std::string ReadLogTail(const std::string& log_path, long lines, int64_t* end);

// Rotates `log_path` if its live part is over the limit. Keeps the newest quarter of the limit
// live, so that `logs --tail` right after a rotation still has lines to show. Returns whether
// it rotated. `index_path` (log_index.h) is trimmed of records of bytes no file keeps any more:
// a new file renamed over it, so its writer must reopen it after a rotation. A rotation holds an
// exclusive flock(2) on the log, and ReadLog and ReadLogTail a shared one, so a reader in another
// process never sees .1 renamed halfway or reads a range as it is punched. `warning`, if given,
// is set when the filesystem cannot punch holes (the copy-and-truncate fallback loses output).
Result<bool> RotateLog(const std::string& log_path, const std::string& index_path, const LogLimits& limits,
                       std::string* warning = nullptr);

}  // namespace mentat
