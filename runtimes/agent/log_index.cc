#include "runtimes/agent/log_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace mentat {
namespace {

// One record: 16 bytes, native order (the index never leaves the node). A record torn by a
// crash mid-append is a partial tail that readers ignore.
struct Record {
  int64_t unix_ms;
  int64_t size;
};

bool ReadRecord(int fd, int64_t i, Record* r) {
  return ::pread(fd, r, sizeof(*r), static_cast<off_t>(i * sizeof(Record))) == sizeof(*r);
}

int64_t RecordCount(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  return st.st_size / static_cast<int64_t>(sizeof(Record));
}

}  // namespace

void SampleLogSize(const std::string& log_path, const std::string& index_path, int64_t now_ms) {
  struct stat st {};
  if (::stat(log_path.c_str(), &st) != 0) return;
  int fd = ::open(index_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return;
  int64_t n = RecordCount(fd);
  Record last{};
  bool have_last = n > 0 && ReadRecord(fd, n - 1, &last);
  if (have_last && st.st_size == last.size) {
    ::close(fd);
    return;
  }
  if (have_last && st.st_size < last.size) n = 0;  // the log started over
  if (::ftruncate(fd, static_cast<off_t>(n * sizeof(Record))) == 0) {  // drops a torn tail too
    Record r{now_ms, st.st_size};
    (void)!::pwrite(fd, &r, sizeof(r), static_cast<off_t>(n * sizeof(Record)));
  }
  ::close(fd);
}

int64_t LogOffsetSince(const std::string& log_path, const std::string& index_path, int64_t since_ms) {
  int fd = ::open(index_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;  // never sampled: all of it may be recent
  // Binary search for the last record before since_ms (times only grow).
  int64_t lo = 0, hi = RecordCount(fd);
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    Record r{};
    if (!ReadRecord(fd, mid, &r)) break;
    if (r.unix_ms < since_ms) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  Record before{};
  bool found = lo > 0 && ReadRecord(fd, lo - 1, &before);
  ::close(fd);
  if (!found) return 0;
  // A sample may fall inside a line: show that line whole.
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
