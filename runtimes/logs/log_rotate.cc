#include "runtimes/logs/log_rotate.h"

#include "runtimes/logs/log_index.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/file.h>

#include <vector>

namespace mentat {
namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Held on the live log while it rotates (exclusive) and while it is read (shared): rotations run
// in the log relay's process and reads in the agent's, so a lock on the file, not a mutex.
// Released when the descriptor is closed.
void LockLog(int fd, int how) {
  while (::flock(fd, how) != 0 && errno == EINTR) {
  }
}

// Copies [from, to) of `src` to the end of `dst`.
Status CopyRange(int src, int64_t from, int64_t to, int dst) {
  loff_t in = from;
  while (in < to) {
    ssize_t n = ::copy_file_range(src, &in, dst, nullptr, static_cast<size_t>(to - in), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
      char buf[1 << 16];
      ssize_t r = ::pread(src, buf, std::min<int64_t>(sizeof(buf), to - in), in);
      if (r <= 0) return ErrnoError("log rotation: reading the log", errno);
      if (::write(dst, buf, static_cast<size_t>(r)) != r) return ErrnoError("log rotation: writing the archive", errno);
      in += r;
      continue;
    }
    if (n < 0) return ErrnoError("log rotation: copying the log", errno);
    if (n == 0) break;  // the source is shorter than we were told: nothing more to copy
  }
  return {};
}

// Index records (log_index.h): keep those at or after `start` (the oldest byte kept, in the
// archives or live), and the one just before it, which still answers older `since` times.
void TrimIndex(const std::string& index_path, int64_t start) {
  using Record = IndexRecord;
  Fd in(::open(index_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return;
  std::vector<Record> records;
  Record r{};
  for (off_t at = 0; ::pread(in.fd, &r, sizeof(r), at) == sizeof(r); at += sizeof(r)) records.push_back(r);
  size_t first = 0;
  while (first + 1 < records.size() && records[first + 1].size <= start) ++first;
  if (first == 0) return;
  std::string tmp = index_path + ".tmp";
  Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (out.fd < 0) return;
  size_t bytes = (records.size() - first) * sizeof(Record);
  if (::write(out.fd, records.data() + first, bytes) != static_cast<ssize_t>(bytes)) {
    ::unlink(tmp.c_str());
    return;
  }
  ::rename(tmp.c_str(), index_path.c_str());
}

// The line the oldest cut went through began in a file no longer kept: skip its end.
void SkipPartialLine(std::string& out) {
  auto nl = out.find('\n');
  if (nl != std::string::npos) out.erase(0, nl + 1);
}

// Where each kept byte range of a log lives: the archives, oldest first, then the live part.
// .1 ends where the live part starts, each older archive where the newer one begins. Built and
// read under the log's lock.
struct Segment {
  int fd;  // owned by the Segments
  int64_t from, to;  // logical offsets
  int64_t file_offset;  // where `from` is in the file
};
struct Segments {
  std::vector<Segment> list;
  int64_t size = 0;  // the log's logical size
  ~Segments() {
    for (auto& s : list) ::close(s.fd);
  }
  int64_t oldest() const { return list.empty() ? size : list.front().from; }

  // Reads [from, to) into the end of `out`, across segments.
  void Read(int64_t from, int64_t to, std::string& out) const {
    for (const auto& s : list) {
      int64_t a = std::max(from, s.from), b = std::min(to, s.to);
      if (a >= b) continue;
      size_t at = out.size();
      out.resize(at + static_cast<size_t>(b - a));
      ssize_t n = ::pread(s.fd, out.data() + at, static_cast<size_t>(b - a), a - s.from + s.file_offset);
      out.resize(at + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n != b - a) return;
    }
  }
};

// `follow_archives` false: only the live part (the caller wants no history).
Segments Open(const std::string& log_path, int64_t want_from, bool follow_archives) {
  Segments segs;
  int fd = ::open(log_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return segs;
  LockLog(fd, LOCK_SH);  // until the Segments close it
  struct stat st {};
  ::fstat(fd, &st);
  segs.size = st.st_size;
  const int64_t start = LogDataStart(fd);
  int64_t end = start;
  for (int i = 1; follow_archives && end > want_from; ++i) {
    std::string path = log_path + "." + std::to_string(i);
    int a = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (a < 0) break;
    struct stat ast {};
    if (::fstat(a, &ast) != 0 || ast.st_size > end) {  // not a contiguous archive
      ::close(a);
      break;
    }
    segs.list.insert(segs.list.begin(), {a, end - ast.st_size, end, 0});
    end -= ast.st_size;
  }
  segs.list.push_back({fd, start, st.st_size, start});
  return segs;
}

}  // namespace

std::string ReadLog(const std::string& log_path, int64_t* offset, size_t limit) {
  // The whole read under the lock (Open takes it): a punch between finding the live start and
  // reading would read zeros.
  Segments segs = Open(log_path, *offset, true);
  if (segs.list.empty()) return "";
  if (segs.size < *offset) *offset = 0;  // started over
  bool skip_partial = false;
  if (*offset < segs.oldest()) {
    *offset = segs.oldest();  // older than anything kept
    skip_partial = *offset > 0;
  }
  std::string out;
  int64_t to = std::min<int64_t>(segs.size, *offset + static_cast<int64_t>(limit));
  segs.Read(*offset, to, out);
  *offset += static_cast<int64_t>(out.size());
  if (skip_partial) SkipPartialLine(out);
  return out;
}

std::string ReadLogTail(const std::string& log_path, long lines, int64_t* end) {
  Segments segs = Open(log_path, 0, true);
  *end = segs.size;
  if (segs.list.empty() || lines == 0) return "";
  // Backwards from the end until one more newline than lines asked for (a final newline
  // ends the last line; the extra one bounds the first).
  std::string text;
  int64_t at = segs.size;
  long newlines = 0;
  while (at > segs.oldest() && newlines <= lines && text.size() < (64u << 20)) {
    int64_t from = std::max(segs.oldest(), at - 65536);
    std::string chunk;
    segs.Read(from, at, chunk);
    if (chunk.size() != static_cast<size_t>(at - from)) break;
    newlines += std::count(chunk.begin(), chunk.end(), '\n');
    text.insert(0, chunk);
    at = from;
  }
  // The newline before the first wanted line: the lines'th one from the end, not counting the
  // newline that ends the last line.
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (long found = 0; found < lines; ++found) {
    auto nl = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      // Fewer lines than asked for: all of them, less the end of a line cut by rotation.
      if (at > 0 && at == segs.oldest()) SkipPartialLine(text);
      return text;
    }
    pos = nl;
  }
  return text.substr(pos + 1);
}

int64_t LogDataStart(int fd) {
  off_t at = ::lseek(fd, 0, SEEK_DATA);
  if (at >= 0) return at;
  if (errno == ENXIO) {  // no data at all: empty, or entirely punched
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? st.st_size : 0;
  }
  return 0;  // no SEEK_DATA here: nothing was ever punched either
}

Result<bool> RotateLog(const std::string& log_path, const std::string& index_path, const LogLimits& limits,
                       std::string* warning) {
  // Called for every log every second: a log that was never as long as the limit needs no
  // open (its live part cannot be longer than the file).
  struct stat quick {};
  if (::stat(log_path.c_str(), &quick) != 0 || quick.st_size <= limits.max_file_bytes) return false;
  Fd log(::open(log_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (log.fd < 0) {
    if (errno == ENOENT) return false;
    return ErrnoError("log rotation: opening " + log_path, errno);
  }
  struct stat st {};
  if (::fstat(log.fd, &st) != 0) return ErrnoError("log rotation: " + log_path, errno);
  if (!S_ISREG(st.st_mode)) return false;
  int64_t size = st.st_size;
  int64_t start = LogDataStart(log.fd);
  if (size - start <= limits.max_file_bytes) return false;
  const int64_t block = st.st_blksize > 0 ? st.st_blksize : 4096;
  int64_t cut = (size - limits.max_file_bytes / 4) / block * block;
  if (cut <= start) return false;

  LockLog(log.fd, LOCK_EX);
  // What went by since the last rotation becomes archives of at most max_file_bytes each, the
  // newest as .1 (a burst between two samples may make several); those past max_files go.
  const std::string base = log_path + ".";
  std::vector<std::pair<int64_t, int64_t>> pieces;  // newest first
  for (int64_t to = cut; to > start && static_cast<int>(pieces.size()) < limits.max_files;) {
    int64_t from = std::max(start, to - limits.max_file_bytes);
    pieces.emplace_back(from, to);
    to = from;
  }
  const int shift = static_cast<int>(pieces.size());
  for (int i = limits.max_files; i >= 1 && shift > 0; --i) {
    std::string from = base + std::to_string(i);
    if (i + shift > limits.max_files) {
      ::unlink(from.c_str());
    } else {
      ::rename(from.c_str(), (base + std::to_string(i + shift)).c_str());
    }
  }
  for (size_t k = 0; k < pieces.size(); ++k) {
    std::string tmp = base + std::to_string(k + 1) + ".tmp";
    Fd archive(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (archive.fd < 0) return ErrnoError("log rotation: creating " + tmp, errno);
    MT_RETURN_IF_ERROR(CopyRange(log.fd, pieces[k].first, pieces[k].second, archive.fd));
    if (::rename(tmp.c_str(), (base + std::to_string(k + 1)).c_str()) != 0) {
      return ErrnoError("log rotation: " + tmp, errno);
    }
  }
  if (::fallocate(log.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, start, cut - start) != 0) {
    if (errno != EOPNOTSUPP) return ErrnoError("log rotation: punching " + log_path, errno);
    // No holes on this filesystem: keep the rest in .1 and truncate. What the workload writes
    // between the copy and the truncate is lost, which is why this is only the fallback.
    if (warning) {
      *warning = "log rotation: " + log_path + " cannot punch holes; copying and truncating "
                 "instead (output written during the copy is lost)";
    }
    if (limits.max_files > 0) {
      Fd archive(::open((base + "1").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
      struct stat now {};
      ::fstat(log.fd, &now);
      if (archive.fd >= 0) MT_RETURN_IF_ERROR(CopyRange(log.fd, cut, now.st_size, archive.fd));
    }
    if (::ftruncate(log.fd, 0) != 0) return ErrnoError("log rotation: truncating " + log_path, errno);
    cut = 0;
  }
  // The index keeps the times of what the archives still hold: a merge orders those lines too.
  if (cut > 0) {
    int64_t oldest = cut;
    struct stat ast {};
    for (int i = 1; i <= limits.max_files && ::stat((base + std::to_string(i)).c_str(), &ast) == 0; ++i) {
      oldest -= ast.st_size;
    }
    TrimIndex(index_path, std::max<int64_t>(oldest, 0));
  }
  return true;
}

}  // namespace mentat
