#include "runtimes/logs/log_merge.h"

#include <sys/stat.h>

#include <algorithm>

#include "runtimes/logs/log_index.h"
#include "runtimes/logs/log_rotate.h"

namespace mentat {
namespace {

std::string PathOf(const std::string& dir, LogStream s, const char* ext) {
  return dir + "/" + LogStreamName(s) + "." + ext;
}

// A line as read, before the merge decides whether it is returned.
struct Candidate {
  MergedLine line;
  bool indexed = true;
  int64_t end = 0;  // the offset just past it in its log
};

// One stream's bytes from the cursor on, cut into lines, each with the time of the record that
// holds its end. `*offset` moves to where the lines end; `*truncated` when the limit cut it.
std::vector<Candidate> ReadStream(const std::string& dir, LogStream s, int64_t* offset,
                                  const MergeOptions& o, bool* truncated) {
  const std::string log = PathOf(dir, s, "log");
  // The index first: bytes appended after it was read are then past its last record.
  const auto records = ReadIndex(PathOf(dir, s, "idx"));
  struct stat st {};
  const bool exists = ::stat(log.c_str(), &st) == 0;
  const int64_t mtime_ns = exists ? static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec
                                  : RealtimeNs();
  std::string text = ReadLog(log, offset, o.limit);
  // ReadLog reads up to the size it finds (at least this one) unless the limit stops it first.
  *truncated = exists && *offset < st.st_size;
  const int64_t start = *offset - static_cast<int64_t>(text.size());
  // An unended line waits for its end when following, and when the limit cut it.
  const bool hold_partial = o.follow || *truncated;
  std::vector<Candidate> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t piece_end = nl == std::string::npos ? text.size() : nl + 1;
    bool full = nl != std::string::npos;
    if (piece_end - pos > kMaxLinePiece + (full ? 1 : 0)) {
      piece_end = pos + kMaxLinePiece;
      full = false;
    } else if (!full && hold_partial) {
      break;  // the line has not ended yet: wait for the rest
    }
    const int64_t end = start + static_cast<int64_t>(piece_end);
    auto rec = std::partition_point(records.begin(), records.end(),
                                    [&](const IndexRecord& r) { return r.size < end; });
    Candidate c;
    c.indexed = rec != records.end();
    if (!c.indexed && o.follow) break;  // its record is about to come
    c.line.stream = s;
    c.line.time_ns = c.indexed ? rec->time_ns : mtime_ns;
    c.line.content = text.substr(pos, piece_end - pos - (full ? 1 : 0));
    c.line.full = full;
    c.end = end;
    out.push_back(std::move(c));
    pos = piece_end;
  }
  *offset = start + static_cast<int64_t>(pos);
  return out;
}

bool Before(const Candidate& a, const Candidate& b) {
  if (a.indexed != b.indexed) return a.indexed;
  if (a.line.time_ns != b.line.time_ns) return a.line.time_ns < b.line.time_ns;
  return a.line.stream < b.line.stream;
}

}  // namespace

std::vector<MergedLine> ReadMerged(const std::string& dir, LogCursor& cursor, const MergeOptions& o) {
  if (o.tail >= 0 && !o.since_ns) {
    for (LogStream s : {LogStream::kStdout, LogStream::kStderr}) {
      int64_t end = 0;
      std::string last = ReadLogTail(PathOf(dir, s, "log"), o.tail, &end);
      cursor.offset[static_cast<int>(s)] = end - static_cast<int64_t>(last.size());
    }
  }
  std::vector<Candidate> all;
  bool truncated[2] = {false, false};
  for (LogStream s : {LogStream::kStdout, LogStream::kStderr}) {
    const int i = static_cast<int>(s);
    auto lines = ReadStream(dir, s, &cursor.offset[i], o, &truncated[i]);
    std::move(lines.begin(), lines.end(), std::back_inserter(all));
  }
  std::stable_sort(all.begin(), all.end(), Before);
  // A stream cut by the limit has more lines to come: nothing later than its last one read is
  // returned yet (of either stream), or the merge would put it before them.
  const Candidate* horizon = nullptr;
  for (int i = 0; i < 2; ++i) {
    if (!truncated[i]) continue;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      if (static_cast<int>(it->line.stream) != i) continue;
      if (!horizon || Before(*it, *horizon)) horizon = &*it;
      break;
    }
  }
  size_t keep = all.size();
  if (horizon) keep = static_cast<size_t>(horizon - all.data()) + 1;
  // What is not kept is not consumed: its stream's cursor goes back to its first line left.
  for (size_t k = all.size(); k > keep; --k) {
    const Candidate& c = all[k - 1];
    cursor.offset[static_cast<int>(c.line.stream)] = c.end - c.line.bytes();
  }
  all.resize(keep);
  size_t first = 0;
  if (o.since_ns) {
    while (first < all.size() && all[first].line.time_ns < *o.since_ns) ++first;
  }
  if (o.tail >= 0) first = std::max(first, all.size() - std::min(all.size(), static_cast<size_t>(o.tail)));
  std::vector<MergedLine> out;
  out.reserve(all.size() - first);
  for (size_t k = first; k < all.size(); ++k) out.push_back(std::move(all[k].line));
  return out;
}

LogCursor StartOf(const LogCursor& after, const std::vector<MergedLine>& lines) {
  LogCursor start = after;
  for (const auto& l : lines) start.offset[static_cast<int>(l.stream)] -= l.bytes();
  return start;
}

LogCursor CursorSince(const std::string& dir, int64_t since_ns) {
  LogCursor c;
  for (LogStream s : {LogStream::kStdout, LogStream::kStderr}) {
    c.offset[static_cast<int>(s)] = LogOffsetSince(PathOf(dir, s, "log"), PathOf(dir, s, "idx"), since_ns);
  }
  return c;
}

}  // namespace mentat
