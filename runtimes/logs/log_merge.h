// The merged reader: a task's stdout and stderr as one sequence of lines in the order they were
// written, by merging the two time indexes (log_index.h). What the agent's
// GET /v1/allocations/NAME/logs?stream=all serves.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtimes/logs/log_writer.h"

namespace mentat {

struct MergedLine {
  LogStream stream = LogStream::kStdout;
  int64_t time_ns = 0;  // from the index record that holds the line's end
  std::string content;  // without its newline
  bool full = true;     // ended by a newline; false: a piece of a line that has not ended yet
  // The bytes of its log this line stands for: content, and its newline when full.
  int64_t bytes() const { return static_cast<int64_t>(content.size()) + (full ? 1 : 0); }
};

// Per stream (LogStream as index), the next byte of the log to read: logical offsets, as
// log_rotate.h counts them.
struct LogCursor {
  int64_t offset[2] = {0, 0};
};

struct MergeOptions {
  // Following: only lines both ended and indexed are read; the rest waits for a later call.
  // Otherwise everything is read: bytes past a stream's last record come after every indexed
  // line (at the log's modification time), and an unterminated last line as a partial one.
  bool follow = false;
  std::optional<int64_t> since_ns;  // only the lines from then on
  long tail = -1;                   // only the last N lines; -1: all
  size_t limit = 8 << 20;           // at most about this many bytes of each stream per call
};

// A line longer than this is returned in pieces (not full) even when following.
inline constexpr size_t kMaxLinePiece = 64 << 10;

// Reads <dir>/stdout.log and stderr.log from `cursor` on, merged in time order, and moves the
// cursor past what it returned and what since/tail skipped. With tail (and no since), the cursor
// is first set to where each stream's last `tail` lines begin. Lines of a stream are never reordered; lines
// of the two streams are ordered by their records' times (stdout first on a tie). A log that
// shrank (a new allocation in the slot) is read from its start; an offset older than what
// rotation kept moves up to the oldest line kept.
std::vector<MergedLine> ReadMerged(const std::string& dir, LogCursor& cursor, const MergeOptions& options);

// Where `lines`, just returned by ReadMerged with the cursor now at `after`, begin in each
// stream: a client that counts each stream's bytes (MergedLine::bytes) resumes exactly there.
LogCursor StartOf(const LogCursor& after, const std::vector<MergedLine>& lines);

// The cursor from which lines at or after `since_ns` are found (log_index.h's LogOffsetSince).
LogCursor CursorSince(const std::string& dir, int64_t since_ns);

}  // namespace mentat
