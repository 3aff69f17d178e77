// The one writer of a task's logs: appends each chunk of output to stdout.log or stderr.log,
// indexes it (log_index.h) and rotates (log_rotate.h). The log relay (cmd/log-relay) is one per
// task; the docker driver's log pump uses one for the container's stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "apis/error.h"
#include "runtimes/logs/log_rotate.h"

namespace mentat {

enum class LogStream { kStdout = 0, kStderr = 1 };
inline const char* LogStreamName(LogStream s) { return s == LogStream::kStdout ? "stdout" : "stderr"; }

// A burst: chunks of one stream less than kIndexBurstGapNs apart, for at most kIndexCoalesceNs,
// are one record (its size moved on in place, its time the burst's first chunk's). A pause
// starts a new record, so a line written after one is never dated before it.
inline constexpr int64_t kIndexBurstGapNs = 10'000'000;
inline constexpr int64_t kIndexCoalesceNs = 100'000'000;

class TaskLogWriter {
 public:
  // Opens (creating) <dir>/stdout.log, stderr.log and their indexes. `limits` bound the disk
  // the logs take (rotation after each chunk that takes a log over).
  static Result<std::unique_ptr<TaskLogWriter>> Open(const std::string& dir, LogLimits limits);
  ~TaskLogWriter();
  TaskLogWriter(const TaskLogWriter&) = delete;
  TaskLogWriter& operator=(const TaskLogWriter&) = delete;

  // Appends `data` to the stream's log, then its index record at `time_ns` (the realtime clock
  // when 0). Record times are strictly increasing across both streams (a time at or before the
  // last one becomes the last one + 1 ns), so the two indexes merge into the order of the calls.
  // A chunk of the same stream as the last record's, in its burst, only moves that record's
  // size on.
  Status Append(LogStream stream, std::string_view data, int64_t time_ns = 0);
  // Why the last rotation warned (a filesystem without hole punching); empty when it did not.
  const std::string& rotation_warning() const { return rotation_warning_; }

 private:
  TaskLogWriter(std::string dir, LogLimits limits) : dir_(std::move(dir)), limits_(limits) {}
  std::string Path(LogStream s, const char* ext) const;
  Status OpenIndex(LogStream s);
  Status Index(LogStream s, int64_t size, int64_t time_ns);
  void Rotate(LogStream s, int64_t size);

  std::string dir_;
  LogLimits limits_;
  int log_fd_[2] = {-1, -1};
  int index_fd_[2] = {-1, -1};
  int64_t records_[2] = {0, 0};   // whole records in each index
  int64_t live_from_[2] = {0, 0};  // where each log's live part started at its last rotation
  int64_t last_ns_ = 0;            // the last record time written, of either stream
  int last_stream_ = -1;           // the stream of the last record; -1: none to extend
  int64_t last_record_ns_ = 0;     // the time of that record
  int64_t last_chunk_ns_ = 0;      // when its last chunk came
  std::string rotation_warning_;
};

// The realtime clock in Unix nanoseconds.
int64_t RealtimeNs();

}  // namespace mentat
