#include "runtimes/logs/log_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace mentat {
namespace {

bool ReadRecord(int fd, int64_t i, IndexRecord* r) {
  return ::pread(fd, r, sizeof(*r), static_cast<off_t>(i * sizeof(IndexRecord))) == sizeof(*r);
}

int64_t RecordCount(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  return st.st_size / static_cast<int64_t>(sizeof(IndexRecord));
}

}  // namespace

std::vector<IndexRecord> ReadIndex(const std::string& index_path) {
  std::vector<IndexRecord> out;
  int fd = ::open(index_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    out.resize(static_cast<size_t>(st.st_size) / sizeof(IndexRecord));
    ssize_t got = ::pread(fd, out.data(), out.size() * sizeof(IndexRecord), 0);
    out.resize(got > 0 ? static_cast<size_t>(got) / sizeof(IndexRecord) : 0);
  }
  ::close(fd);
  for (auto& r : out) r.time_ns = IndexTimeNs(r.time_ns);
  return out;
}

void SampleLogSize(const std::string& log_path, const std::string& index_path, int64_t now_ns) {
  struct stat st {};
  if (::stat(log_path.c_str(), &st) != 0) return;
  int fd = ::open(index_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return;
  int64_t n = RecordCount(fd);
  IndexRecord last{};
  bool have_last = n > 0 && ReadRecord(fd, n - 1, &last);
  if (have_last && st.st_size == last.size) {
    ::close(fd);
    return;
  }
  if (have_last && st.st_size < last.size) n = 0;  // the log started over
  if (::ftruncate(fd, static_cast<off_t>(n * sizeof(IndexRecord))) == 0) {  // drops a torn tail too
    IndexRecord r{now_ns, st.st_size};
    (void)!::pwrite(fd, &r, sizeof(r), static_cast<off_t>(n * sizeof(IndexRecord)));
  }
  ::close(fd);
}

int64_t LogOffsetSince(const std::string& log_path, const std::string& index_path, int64_t since_ns) {
  int fd = ::open(index_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;  // never indexed: all of it may be recent
  // Binary search for the last record before since_ns (times only grow).
  int64_t lo = 0, hi = RecordCount(fd);
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    IndexRecord r{};
    if (!ReadRecord(fd, mid, &r)) break;
    if (IndexTimeNs(r.time_ns) < since_ns) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  IndexRecord before{};
  bool found = lo > 0 && ReadRecord(fd, lo - 1, &before);
  ::close(fd);
  if (!found) return 0;
  // A record may end inside a line: show that line whole.
  int64_t offset = before.size;
  int log = ::open(log_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (log < 0) return offset;
  char buf[65536];
  int64_t from = std::max<int64_t>(0, offset - static_cast<int64_t>(sizeof(buf)));
  ssize_t got = ::pread(log, buf, static_cast<size_t>(offset - from), from);
  ::close(log);
  if (got <= 0) return offset;
  for (ssize_t i = got; i > 0; --i) {
    if (buf[i - 1] == '\n') return from + i;
  }
  return from == 0 ? 0 : offset;
}

}  // namespace mentat
