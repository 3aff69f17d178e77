#include "runtimes/agent/log_endpoint.h"

#include <memory>

#include "apis/log_lines.h"
#include "apis/object.h"
#include "runtimes/logs/log_index.h"
#include "runtimes/logs/log_merge.h"
#include "runtimes/logs/log_rotate.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

Error FieldInvalid(const std::string& field, const std::string& why) {
  return Error(Code::kInvalidArgument, "invalid " + field, {{field, 0, 0, why}});
}

bool IsCount(const std::string& v) {
  return !v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string::npos;
}

// The last `lines` lines of `text` (all of it for a negative count).
std::string LastLines(const std::string& text, long lines) {
  if (lines < 0) return text;
  size_t end = text.size();
  if (end && text[end - 1] == '\n') --end;
  size_t pos = end;
  for (long n = 0; n < lines; ++n) {
    auto nl = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
    if (n + 1 == lines) return text.substr(pos + 1);
  }
  return lines == 0 ? "" : text;
}

std::string Format(const std::vector<MergedLine>& lines) {
  std::string out;
  for (const auto& l : lines) out += FormatLogLine(l.time_ns, LogStreamName(l.stream), l.full, l.content);
  return out;
}

// ?stream=stdout|stderr: the stream's bytes as written, from an offset, a time or the tail.
void ServeRawLog(const std::string& dir, const LogsQuery& q, HttpResponse& res) {
  const std::string path = dir + "/" + q.stream + ".log";
  int64_t offset = 0;
  std::string first;
  if (q.offset) {
    offset = *q.offset;
    first = ReadLog(path, &offset);
  } else if (q.since_ns) {
    // From the time index (log_index.h).
    offset = LogOffsetSince(path, dir + "/" + q.stream + ".idx", *q.since_ns);
    first = ReadLog(path, &offset);
    first = LastLines(first, q.tail.value_or(-1));
  } else if (q.tail) {
    first = ReadLogTail(path, *q.tail, &offset);
  } else {
    // All that is kept: rotation bounds it (log_rotate.h).
    first = ReadLog(path, &offset, q.follow ? (8u << 20) : (256u << 20));
  }
  res.content_type = "text/plain; charset=utf-8";
  res.headers.emplace_back("X-Log-Start", std::to_string(offset - static_cast<int64_t>(first.size())));
  if (!q.follow) {
    res.body = std::move(first);
    return;
  }
  res.stream = [path, offset, first](const std::shared_ptr<HttpStream>& s) mutable {
    if (!first.empty()) s->Write(first);
    auto at = std::make_shared<int64_t>(offset);
    // Polled, like `tail -F`: the file is appended, truncated or replaced when a new allocation
    // takes the slot, and may vanish for a while between the two.
    s->Every(200ms, [w = std::weak_ptr<HttpStream>(s), path, at] {
      auto s = w.lock();
      if (!s || !s->open() || s->Pending() > (1 << 20)) return;
      std::string more = ReadLog(path, at.get());
      if (!more.empty()) s->Write(more);
    });
  };
}

// ?stream=all: both streams merged in order (log_merge.h), as apis/log_lines.h lines.
void ServeMergedLogs(const std::string& dir, const LogsQuery& q, HttpResponse& res) {
  LogCursor cursor;
  MergeOptions o;
  o.follow = q.follow;
  o.limit = q.follow ? (8u << 20) : (256u << 20);
  if (q.offsets) {
    cursor.offset[0] = q.offsets->first;
    cursor.offset[1] = q.offsets->second;
  } else {
    if (q.since_ns) cursor = CursorSince(dir, *q.since_ns);
    o.since_ns = q.since_ns;
    o.tail = q.tail.value_or(-1);
  }
  auto lines = ReadMerged(dir, cursor, o);
  const LogCursor start = StartOf(cursor, lines);
  res.content_type = "text/plain; charset=utf-8";
  res.headers.emplace_back("X-Log-Start", FormatLogOffsets(start.offset[0], start.offset[1]));
  if (!q.follow) {
    res.body = Format(lines);
    return;
  }
  res.stream = [dir, cursor, first = Format(lines)](const std::shared_ptr<HttpStream>& s) {
    if (!first.empty()) s->Write(first);
    auto at = std::make_shared<LogCursor>(cursor);
    s->Every(200ms, [w = std::weak_ptr<HttpStream>(s), dir, at] {
      auto s = w.lock();
      if (!s || !s->open() || s->Pending() > (1 << 20)) return;
      MergeOptions more;
      more.follow = true;
      std::string text = Format(ReadMerged(dir, *at, more));
      if (!text.empty()) s->Write(text);
    });
  };
}

}  // namespace

Result<LogsQuery> ParseLogsQuery(const HttpRequest& req) {
  LogsQuery q;
  if (!req.Param("stream").empty()) q.stream = req.Param("stream");
  if (q.stream != "all" && q.stream != "stdout" && q.stream != "stderr") {
    return std::unexpected(FieldInvalid("stream", "all, stdout or stderr, got \"" + q.stream + "\""));
  }
  if (req.HasParam("tail")) {
    const std::string v = req.Param("tail");
    if (!IsCount(v)) return std::unexpected(FieldInvalid("tail", "must be a non-negative integer, got \"" + v + "\""));
    q.tail = std::stol(v);
  }
  if (req.HasParam("offset")) {
    const std::string v = req.Param("offset");
    if (q.stream == "all") {
      q.offsets = ParseLogOffsets(v);
      if (!q.offsets) {
        return std::unexpected(FieldInvalid("offset", "must be OUT,ERR (two non-negative integers) with "
                                                      "stream all, got \"" + v + "\""));
      }
    } else if (IsCount(v)) {
      q.offset = std::stoll(v);
    } else {
      return std::unexpected(FieldInvalid("offset", "must be a non-negative integer, got \"" + v + "\""));
    }
  }
  if (req.HasParam("since")) {
    const std::string v = req.Param("since");
    if (IsCount(v)) {
      // Unix milliseconds, or nanoseconds (any count that large).
      q.since_ns = IndexTimeNs(std::stoll(v));
    } else if (auto ms = ParseRfc3339Millis(v)) {
      q.since_ns = *ms * 1'000'000;
    } else {
      return std::unexpected(FieldInvalid("since", "Unix milliseconds or an RFC 3339 time, got \"" + v + "\""));
    }
  }
  q.follow = req.Param("follow") == "true";
  return q;
}

void ServeTaskLogs(const std::string& task_dir, const LogsQuery& q, HttpResponse& res) {
  if (q.stream == "all") return ServeMergedLogs(task_dir, q, res);
  ServeRawLog(task_dir, q, res);
}

}  // namespace mentat
