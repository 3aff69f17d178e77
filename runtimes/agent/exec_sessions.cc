#include "runtimes/agent/exec_sessions.h"

#include <condition_variable>
#include <deque>
#include <vector>

#include "apis/base64.h"
#include "apis/object.h"

namespace mentat {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::unexpected<Error> FieldInvalid(const std::string& field, const std::string& message) {
  return MakeError(Code::kInvalidArgument, "invalid exec request: " + field + " " + message,
                   {{field, 0, 0, message}});
}

Result<Json> ParseObject(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(Code::kInvalidArgument, "invalid exec request: the body must be a JSON object");
  }
  return j;
}

Result<unsigned short> Dimension(const Json& j, const std::string& field, unsigned short fallback) {
  if (!j.contains(field)) return fallback;
  const Json& v = j[field];
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 65535) {
    return FieldInvalid(field, "must be an integer from 1 to 65535, got " + v.dump());
  }
  return static_cast<unsigned short>(v.get<int64_t>());
}

// Tokens are compared in constant time: the comparison must not tell how much of one matched.
bool SameToken(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

Result<ExecOptions> ParseExecRequest(const std::string& body) {
  MT_ASSIGN_OR_RETURN(Json j, ParseObject(body));
  for (const auto& [k, v] : j.items()) {
    if (k != "command" && k != "tty" && k != "stdin" && k != "rows" && k != "cols") {
      return FieldInvalid(k, "is not a field of an exec request (command, tty, stdin, rows, cols)");
    }
  }
  ExecOptions o;
  if (!j.contains("command") || !j["command"].is_array() || j["command"].empty()) {
    return FieldInvalid("command", "must be a non-empty array of strings");
  }
  for (size_t i = 0; i < j["command"].size(); ++i) {
    const Json& arg = j["command"][i];
    if (!arg.is_string() || (i == 0 && arg.get<std::string>().empty()) ||
        arg.get<std::string>().find('\0') != std::string::npos) {
      return FieldInvalid("command[" + std::to_string(i) + "]",
                          i == 0 ? "must be a program name" : "must be a string without NUL");
    }
    o.command.push_back(arg.get<std::string>());
  }
  for (const char* flag : {"tty", "stdin"}) {
    if (j.contains(flag) && !j[flag].is_boolean()) {
      return FieldInvalid(flag, "must be true or false, got " + j[flag].dump());
    }
  }
  o.tty = j.value("tty", false);
  o.stdin = j.value("stdin", false);
  MT_ASSIGN_OR_RETURN(o.rows, Dimension(j, "rows", 24));
  MT_ASSIGN_OR_RETURN(o.cols, Dimension(j, "cols", 80));
  return o;
}

Result<std::pair<unsigned short, unsigned short>> ParseResizeRequest(const std::string& body) {
  MT_ASSIGN_OR_RETURN(Json j, ParseObject(body));
  if (!j.contains("rows")) return FieldInvalid("rows", "is required");
  if (!j.contains("cols")) return FieldInvalid("cols", "is required");
  MT_ASSIGN_OR_RETURN(auto rows, Dimension(j, "rows", 0));
  MT_ASSIGN_OR_RETURN(auto cols, Dimension(j, "cols", 0));
  return std::make_pair(rows, cols);
}

// One session. The driver's pump thread adds lines; the HTTP loop thread takes them (Flush);
// Sweep, on the agent's probe thread, decides when it is over.
struct ExecSessions::Channel : std::enable_shared_from_this<Channel> {
  HttpServer* server = nullptr;
  size_t max_buffered = 0;
  std::string owner;
  bool stdin = false;

  std::mutex mu;
  // Shared so that an input or resize in progress keeps it alive while Sweep lets it go.
  std::shared_ptr<ExecSession> session;
  std::condition_variable room;  // the buffer has room again, or the session is closing
  std::deque<std::string> lines;
  size_t buffered = 0;
  bool finished = false;   // the exit line is queued
  bool delivered = false;  // ... and was written to a reader, whose stream then ended
  bool closing = false;    // being reaped: the output callback must not wait any more
  bool attached = false;
  bool reader_left = false;  // a reader went away before the end
  bool flush_posted = false;
  Clock::time_point idle_since = Clock::now();
  std::weak_ptr<HttpStream> stream;  // loop thread only
  Clock::time_point last_write = Clock::now();  // loop thread only

  void Add(std::string line, bool last) {
    {
      std::unique_lock<std::mutex> lock(mu);
      // Back-pressure rather than loss: the driver's pump (and so the command) waits.
      room.wait(lock, [&] { return closing || buffered < max_buffered; });
      if (closing) return;
      buffered += line.size();
      lines.push_back(std::move(line));
      finished |= last;
      if (!attached || flush_posted) return;
      flush_posted = true;
    }
    server->Post([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->Flush();
    });
  }

  // Loop thread: hands what is buffered to the reader, as fast as it takes it.
  void Flush() {
    auto s = stream.lock();
    {
      std::lock_guard<std::mutex> lock(mu);
      flush_posted = false;
    }
    if (!s || !s->open()) return;
    if (s->Pending() > (256 << 10)) {
      s->WhenDrained([weak = weak_from_this()] {
        if (auto self = weak.lock()) self->Flush();
      });
      return;
    }
    std::deque<std::string> batch;
    bool end = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      batch.swap(lines);
      buffered = 0;
      end = finished;
      if (end) delivered = true;
    }
    room.notify_all();
    std::string chunk;
    for (auto& l : batch) chunk += l;
    if (!chunk.empty()) {
      s->Write(chunk);
      last_write = Clock::now();
    }
    if (end) s->End();
  }
};

namespace {

std::shared_ptr<ExecSession> Session(ExecSessions::Channel& ch) {
  std::lock_guard<std::mutex> lock(ch.mu);
  return ch.session;
}

// Ends a session: its output callback stops waiting, and the command is killed and reaped
// (here, or by an input or resize that still holds it, when that returns).
void Close(ExecSessions::Channel& ch) {
  std::shared_ptr<ExecSession> session;
  {
    std::lock_guard<std::mutex> lock(ch.mu);
    ch.closing = true;
    session = std::move(ch.session);
  }
  ch.room.notify_all();
  session.reset();
}

}  // namespace

ExecSessions::ExecSessions(HttpServer* server, ExecSessionLimits limits)
    : server_(server), limits_(limits) {}

ExecSessions::~ExecSessions() {
  std::map<std::string, std::shared_ptr<Channel>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(channels_);
  }
  for (auto& [id, ch] : all) Close(*ch);
}

Result<std::string> ExecSessions::Create(Driver& driver, const std::string& task_id,
                                         const ExecOptions& options, const std::string& owner) {
  auto ch = std::make_shared<Channel>();
  ch->server = server_;
  ch->max_buffered = limits_.max_buffered;
  ch->owner = owner;
  ch->stdin = options.stdin;
  std::string id = NewUid();  // random (122 bits); the owner check is what guards it
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (channels_.size() >= limits_.max_sessions) {
      return Unavailable("this agent already runs " + std::to_string(limits_.max_sessions) +
                         " exec sessions; try again when one has ended");
    }
    channels_[id] = ch;  // reserves the slot while the command starts
  }
  ExecCallbacks cb;
  std::weak_ptr<Channel> weak = ch;
  cb.output = [weak](ExecStream stream, std::string_view data) {
    if (auto c = weak.lock()) {
      Json line = {{"stream", stream == ExecStream::kStdout ? "stdout" : "stderr"},
                   {"data", Base64Encode(data)}};
      c->Add(line.dump() + "\n", false);
    }
  };
  cb.exit = [weak](const ExitResult& exit) {
    auto c = weak.lock();
    if (!c) return;
    // Shell convention: 128 + the signal's number for a command a signal ended.
    Json line = {{"exit", exit.exit_code ? *exit.exit_code : 128 + exit.signal.value_or(0)}};
    if (exit.signal) line["signal"] = *exit.signal;
    c->Add(line.dump() + "\n", true);
  };
  auto session = driver.Exec(task_id, options, std::move(cb));
  if (!session) {
    std::lock_guard<std::mutex> lock(mu_);
    channels_.erase(id);
    return std::unexpected(session.error());
  }
  std::lock_guard<std::mutex> lock(ch->mu);
  ch->session = std::move(*session);
  return id;
}

Result<std::shared_ptr<ExecSessions::Channel>> ExecSessions::Find(const std::string& id,
                                                                  const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = channels_.find(id);
  if (it == channels_.end() || !Session(*it->second)) {
    return NotFound("no exec session " + id + " on this agent (it may have ended)");
  }
  if (!SameToken(it->second->owner, owner)) {
    return MakeError(Code::kForbidden, "exec session " + id + " belongs to another token");
  }
  return it->second;
}

Status ExecSessions::Attach(const std::string& id, const std::string& owner, HttpResponse& res) {
  MT_ASSIGN_OR_RETURN(auto ch, Find(id, owner));
  {
    std::lock_guard<std::mutex> lock(ch->mu);
    if (ch->attached || ch->delivered) {
      return MakeError(Code::kConflict, "exec session " + id + " already has a reader");
    }
    ch->attached = true;
  }
  res.content_type = "application/x-ndjson";
  res.stream = [ch](const std::shared_ptr<HttpStream>& s) {
    ch->stream = s;
    s->OnClose([weak = std::weak_ptr<Channel>(ch)] {
      auto c = weak.lock();
      if (!c) return;
      std::lock_guard<std::mutex> lock(c->mu);
      c->attached = false;
      c->reader_left = !c->delivered;
      c->idle_since = Clock::now();
    });
    // The tick notices a client that went away (the stream then closes), and keeps a quiet
    // stream alive for the client's read timeout with an empty line object.
    s->Every(std::chrono::milliseconds(1000), [weak = std::weak_ptr<Channel>(ch)] {
      auto c = weak.lock();
      if (!c) return;
      auto st = c->stream.lock();
      if (st && st->open() && Clock::now() - c->last_write > 15s) {
        st->Write("{}\n");
        c->last_write = Clock::now();
      }
    });
    ch->Flush();
  };
  return {};
}

Status ExecSessions::Input(const std::string& id, const std::string& owner, const std::string& data,
                           bool eof) {
  MT_ASSIGN_OR_RETURN(auto ch, Find(id, owner));
  if (!ch->stdin) {
    return MakeError(Code::kFailedPrecondition,
                     "exec session " + id + " was started without stdin (\"stdin\": true)");
  }
  auto session = Session(*ch);
  if (!session) return NotFound("exec session " + id + " has ended");
  if (!data.empty()) MT_RETURN_IF_ERROR(session->WriteStdin(data));
  if (eof) MT_RETURN_IF_ERROR(session->CloseStdin());
  return {};
}

Status ExecSessions::Resize(const std::string& id, const std::string& owner, unsigned short rows,
                            unsigned short cols) {
  MT_ASSIGN_OR_RETURN(auto ch, Find(id, owner));
  auto session = Session(*ch);
  if (!session) return NotFound("exec session " + id + " has ended");
  return session->Resize(rows, cols);
}

void ExecSessions::Sweep() {
  std::vector<std::shared_ptr<Channel>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto now = Clock::now();
    for (auto it = channels_.begin(); it != channels_.end();) {
      auto& ch = it->second;
      bool over = false;
      {
        std::lock_guard<std::mutex> l(ch->mu);
        // A session still starting (no driver session yet) is never over.
        over = ch->session && ((ch->delivered && !ch->attached) || ch->reader_left ||
                               (!ch->attached && now - ch->idle_since > limits_.idle));
      }
      if (over) {
        done.push_back(ch);
        it = channels_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Off the lock: ending a session waits for its pump thread.
  for (auto& ch : done) Close(*ch);
}

size_t ExecSessions::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return channels_.size();
}

}  // namespace mentat
