// GET /v1/allocations/NAME/logs on the agent: the query, checked at the edge, and the answer
// read from a task directory's log files (runtimes/logs). The agent authorizes and finds the
// task directory; this file knows nothing else of it.
#pragma once

#include <optional>
#include <string>

#include "apis/error.h"
#include "apis/server/http_server.h"

namespace mentat {

struct LogsQuery {
  // "all" (the default): both streams merged in order, as apis/log_lines.h lines. "stdout" or
  // "stderr": that stream's bytes as written.
  std::string stream = "all";
  bool follow = false;
  std::optional<long> tail;         // the last N lines
  std::optional<int64_t> since_ns;  // what was written from then on
  // Where to resume: one offset for a single stream, "OUT,ERR" for all.
  std::optional<int64_t> offset;
  std::optional<std::pair<int64_t, int64_t>> offsets;
};

// The query's parameters (stream, follow, tail, since: Unix ms or ns or RFC 3339, offset);
// kInvalidArgument naming the field that is wrong.
Result<LogsQuery> ParseLogsQuery(const HttpRequest& req);

// Answers with the logs in `task_dir` (which has them). The header X-Log-Start says where the
// body starts: the offset in the stream, or "OUT,ERR" for all; a client adds what it received
// (for all, each line's bytes, apis/log_lines.h) and resumes there with ?offset=. Following, the
// response streams on, across restarts of the task and a new allocation in the slot.
void ServeTaskLogs(const std::string& task_dir, const LogsQuery& q, HttpResponse& res);

}  // namespace mentat
