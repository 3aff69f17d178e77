// The agent's exec sessions (POST /v1/allocations/NAME/exec and /v1/exec/ID/...). Each wraps a
// driver ExecSession: its output is kept until a reader attaches (bounded: past the bound the
// command is paused, nothing is dropped), then streamed as JSON lines; the session belongs to
// its creator (the server, which binds it to a user); and sessions nobody reads are killed and
// reaped.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "apis/server/http_server.h"
#include "runtimes/driver.h"

namespace mentat {

// The body of POST /v1/allocations/NAME/exec: {"command":[...], "tty", "stdin", "rows", "cols"}.
// Errors are kInvalidArgument with a detail naming the field.
Result<ExecOptions> ParseExecRequest(const std::string& body);
// The body of POST /v1/exec/ID/resize: {"rows", "cols"}.
Result<std::pair<unsigned short, unsigned short>> ParseResizeRequest(const std::string& body);

struct ExecSessionLimits {
  size_t max_sessions = 16;           // at once on this agent
  size_t max_buffered = 1 << 20;      // output bytes held for a reader; then the command waits
  std::chrono::milliseconds idle{60000};  // with no reader this long, a session is killed
};

class ExecSessions {
 public:
  ExecSessions(HttpServer* server, ExecSessionLimits limits);
  // Kills and reaps every session.
  ~ExecSessions();

  // Runs `options` in task `task_id` of `driver`, for `owner` (the caller). Returns the
  // new session's id. kUnavailable when the agent already runs max_sessions.
  Result<std::string> Create(Driver& driver, const std::string& task_id,
                             const ExecOptions& options, const std::string& owner);

  // GET /v1/exec/ID/output: the stream of {"stream","data"} lines and a final {"exit"} line.
  // One reader at a time (kConflict); a reader that leaves before the end ends the session.
  Status Attach(const std::string& id, const std::string& owner, HttpResponse& res);
  Status Input(const std::string& id, const std::string& owner, const std::string& data,
               bool eof);
  Status Resize(const std::string& id, const std::string& owner, unsigned short rows,
                unsigned short cols);

  // Kills and forgets the sessions that are done: delivered to the end, left by their reader,
  // or unread for `idle`. Called periodically.
  void Sweep();
  size_t size();

  struct Channel;

 private:
  Result<std::shared_ptr<Channel>> Find(const std::string& id, const std::string& owner);

  HttpServer* server_;
  ExecSessionLimits limits_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Channel>> channels_;
};

}  // namespace mentat
