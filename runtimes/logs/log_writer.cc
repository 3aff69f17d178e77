#include "runtimes/logs/log_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "runtimes/logs/log_index.h"

namespace mentat {

int64_t RealtimeNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Result<std::unique_ptr<TaskLogWriter>> TaskLogWriter::Open(const std::string& dir, LogLimits limits) {
  std::unique_ptr<TaskLogWriter> w(new TaskLogWriter(dir, limits));
  for (LogStream s : {LogStream::kStdout, LogStream::kStderr}) {
    const int i = static_cast<int>(s);
    const std::string log = w->Path(s, "log");
    w->log_fd_[i] = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (w->log_fd_[i] < 0) return ErrnoError("opening " + log, errno);
    w->live_from_[i] = LogDataStart(w->log_fd_[i]);
    MT_RETURN_IF_ERROR(w->OpenIndex(s));
  }
  // A restarted task's relay goes on after the last one's records.
  for (LogStream s : {LogStream::kStdout, LogStream::kStderr}) {
    auto records = ReadIndex(w->Path(s, "idx"));
    if (!records.empty()) w->last_ns_ = std::max(w->last_ns_, records.back().time_ns);
  }
  return w;
}

TaskLogWriter::~TaskLogWriter() {
  for (int fd : {log_fd_[0], log_fd_[1], index_fd_[0], index_fd_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

std::string TaskLogWriter::Path(LogStream s, const char* ext) const {
  return dir_ + "/" + LogStreamName(s) + "." + ext;
}

Status TaskLogWriter::OpenIndex(LogStream s) {
  const int i = static_cast<int>(s);
  if (index_fd_[i] >= 0) ::close(index_fd_[i]);
  const std::string path = Path(s, "idx");
  // Not O_APPEND: a coalesced record is rewritten in place with pwrite.
  index_fd_[i] = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (index_fd_[i] < 0) return ErrnoError("opening " + path, errno);
  struct stat st {};
  if (::fstat(index_fd_[i], &st) != 0) return ErrnoError("reading " + path, errno);
  records_[i] = st.st_size / static_cast<int64_t>(sizeof(IndexRecord));
  // A record torn by a crash mid-append goes.
  if (st.st_size % static_cast<int64_t>(sizeof(IndexRecord)) != 0 &&
      ::ftruncate(index_fd_[i], records_[i] * static_cast<off_t>(sizeof(IndexRecord))) != 0) {
    return ErrnoError("truncating " + path, errno);
  }
  return {};
}

Status TaskLogWriter::Append(LogStream s, std::string_view data, int64_t time_ns) {
  if (data.empty()) return {};
  const int i = static_cast<int>(s);
  while (!data.empty()) {
    ssize_t n = ::write(log_fd_[i], data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("writing " + Path(s, "log"), errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  // O_APPEND: the file position is the end, the log's size with this chunk in it.
  const int64_t size = ::lseek(log_fd_[i], 0, SEEK_CUR);
  MT_RETURN_IF_ERROR(Index(s, size, time_ns == 0 ? RealtimeNs() : time_ns));
  if (size - live_from_[i] > limits_.max_file_bytes) Rotate(s, size);
  return {};
}

Status TaskLogWriter::Index(LogStream s, int64_t size, int64_t time_ns) {
  const int i = static_cast<int>(s);
  const bool extend = last_stream_ == i && records_[i] > 0 && time_ns - last_chunk_ns_ < kIndexBurstGapNs &&
                      time_ns - last_record_ns_ < kIndexCoalesceNs;
  last_chunk_ns_ = time_ns;
  IndexRecord r{extend ? last_record_ns_ : std::max(time_ns, last_ns_ + 1), size};
  const int64_t at = extend ? records_[i] - 1 : records_[i];
  off_t where = static_cast<off_t>(at * static_cast<int64_t>(sizeof(IndexRecord)));
  if (extend) {
    // Only the size moves: the record keeps the time of its first chunk.
    if (::pwrite(index_fd_[i], &r.size, sizeof(r.size), where + sizeof(r.time_ns)) != sizeof(r.size)) {
      return ErrnoError("writing " + Path(s, "idx"), errno);
    }
    return {};
  }
  if (::pwrite(index_fd_[i], &r, sizeof(r), where) != sizeof(r)) {
    return ErrnoError("writing " + Path(s, "idx"), errno);
  }
  records_[i] = at + 1;
  last_ns_ = r.time_ns;
  last_stream_ = i;
  last_record_ns_ = r.time_ns;
  return {};
}

void TaskLogWriter::Rotate(LogStream s, int64_t size) {
  const int i = static_cast<int>(s);
  std::string warning;
  auto rotated = RotateLog(Path(s, "log"), Path(s, "idx"), limits_, &warning);
  if (!warning.empty()) rotation_warning_ = warning;
  if (!rotated || !*rotated) {
    // Not over after all (the block rounding), or it failed: look again a limit later.
    live_from_[i] = size - limits_.max_file_bytes / 2;
    return;
  }
  live_from_[i] = LogDataStart(log_fd_[i]);
  // The index was trimmed into a new file: the next record goes there, as a new one.
  (void)OpenIndex(s);
  last_stream_ = -1;
}

}  // namespace mentat
