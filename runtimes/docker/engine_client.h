// A client of the Docker Engine API over its Unix socket (libcurl's CURLOPT_UNIX_SOCKET_PATH),
// the subset the Docker driver needs: containers (create, start, kill, stop, remove, inspect,
// list by label, logs, stats), exec, images (inspect) and the /events stream.
//
// The API version is negotiated once with GET /version: min(the server's ApiVersion, kMaxApi),
// and every later call uses the versioned path /vX.YY/... Errors carry Docker's own message
// ({"message": ...}); a dockerd that does not answer is kUnavailable ("dockerd is not reachable
// at SOCKET: ..."), never a crash, and the next call negotiates again.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"

namespace mentat::docker {

inline constexpr const char* kDefaultSocket = "/var/run/docker.sock";
// The newest API this client speaks (Docker 20.10).
inline constexpr const char* kMaxApi = "1.41";

// The multiplexed stream of attach, logs and exec without a TTY: frames of an 8-byte header
// [stream, 0, 0, 0, size as big-endian uint32] then `size` bytes. Stream 1 is stdout, 2 stderr
// (0, stdin, is never sent back). Feed it bytes as they come; it calls `out` once per payload.
class StreamDemuxer {
 public:
  using Output = std::function<void(int stream, std::string_view data)>;
  // `frame_end`, if given, runs after a frame's last byte (a log message is one frame).
  explicit StreamDemuxer(Output out, std::function<void(int stream)> frame_end = nullptr)
      : out_(std::move(out)), frame_end_(std::move(frame_end)) {}
  void Feed(std::string_view data);

 private:
  Output out_;
  std::function<void(int stream)> frame_end_;
  std::string header_;
  int stream_ = 0;
  size_t remaining_ = 0;
};

struct EngineResponse {
  long status = 0;
  std::string body;
};

// Container creation: the body of POST /containers/create (Config with HostConfig inside).
struct LogsOptions {
  bool follow = false;
  bool timestamps = false;
  std::string since;  // Unix seconds with optional fraction, "" for all
  // The bytes as they come (stream 0), still multiplexed unless the container has a TTY:
  // for a caller that needs the frame boundaries (one log message per frame).
  bool raw = false;
};

class EngineClient {
 public:
  explicit EngineClient(std::string socket = kDefaultSocket) : socket_(std::move(socket)) {}

  const std::string& socket() const { return socket_; }

  // GET /version: {Version, ApiVersion, ...}. Negotiates the version used from then on.
  Result<Json> Version();
  // The version in use ("1.41"), negotiating it first if needed.
  Result<std::string> Api();

  // POST /containers/create?name=NAME: the new container's id.
  Result<std::string> CreateContainer(const std::string& name, const Json& config);
  Status StartContainer(const std::string& id);
  // POST /containers/ID/stop?t=SECONDS (Docker sends the StopSignal, then SIGKILL).
  Status StopContainer(const std::string& id, int timeout_s);
  // POST /containers/ID/kill?signal=N.
  Status KillContainer(const std::string& id, int signal);
  // DELETE /containers/ID?force=&v=.
  Status RemoveContainer(const std::string& id, bool force, bool volumes = true);
  Result<Json> InspectContainer(const std::string& id);
  // GET /containers/json?all=true&filters={"label": [...]}: each "k=v" (or "k") must match.
  Result<Json> ListContainers(const std::vector<std::string>& labels, bool all = true);
  // GET /containers/ID/stats?stream=false.
  Result<Json> Stats(const std::string& id);
  Result<Json> InspectImage(const std::string& name);
  // GET /containers/ID/logs, demultiplexed (or raw with a TTY). Returns when the stream ends (a
  // followed one: when the container stops) or when `cancel` becomes true.
  Status Logs(const std::string& id, const LogsOptions& options,
              const std::function<void(int stream, std::string_view data)>& out,
              const std::atomic<bool>* cancel = nullptr);
  // POST /containers/ID/exec: the exec id.
  Result<std::string> ExecCreate(const std::string& container, const Json& config);
  Result<Json> ExecInspect(const std::string& exec_id);
  Status ExecResize(const std::string& exec_id, unsigned short rows, unsigned short cols);

  // GET /events?filters=...: calls `on_event` for each event until `cancel` or an error (the
  // caller reconnects; see EventWatcher).
  Status Events(const Json& filters, const std::function<void(const Json&)>& on_event,
                const std::atomic<bool>* cancel, const std::string& since = "");

  // One request to `path` (already versioned, or unversioned like "/_ping"). Non-2xx is an
  // error carrying Docker's message; 304 (already started/stopped) is success.
  Result<EngineResponse> Call(const std::string& method, const std::string& path,
                              const std::string& body = "", long timeout_ms = 60000);
  // A versioned path: "/v1.41" + path.
  Result<std::string> Path(const std::string& path);

 private:
  Result<EngineResponse> Perform(const std::string& method, const std::string& path,
                                 const std::string& body, long timeout_ms,
                                 const std::function<bool(std::string_view)>* stream,
                                 const std::atomic<bool>* cancel);
  std::string socket_;
  std::mutex mu_;
  std::string api_;  // negotiated; "" until then
};

// The error for a non-2xx answer: Docker's {"message"} with a code from the HTTP status.
Error EngineError(long status, const std::string& body, const std::string& what);

// Follows /events (type=container; die, oom, start, health_status) on its own thread, and
// reconnects with backoff (200 ms doubling to 5 s) when dockerd goes away. `on_reconnect` runs
// after every (re)connection: what happened while disconnected is for the caller to re-read.
class EventWatcher {
 public:
  // `on_lost` runs when a connected dockerd stops answering (the stream ended and /_ping fails),
  // with the error.
  EventWatcher(EngineClient* client, std::function<void(const Json&)> on_event,
               std::function<void()> on_reconnect, std::function<void(const std::string&)> on_lost = nullptr);
  ~EventWatcher();
  // True while connected to dockerd.
  bool connected() const { return connected_; }

 private:
  void Run();
  EngineClient* client_;
  std::function<void(const Json&)> on_event_;
  std::function<void()> on_reconnect_;
  std::function<void(const std::string&)> on_lost_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

// Hijacks a connection for POST /exec/ID/start with stdin attached (the HTTP "Upgrade: tcp"
// dance Docker uses): after it, the socket carries stdin up and the (multiplexed, or raw with
// a TTY) output down. A plain Unix socket of its own (not libcurl's): Read on one thread and
// Write/CloseWrite on another is safe.
class HijackedStream {
 public:
  static Result<std::unique_ptr<HijackedStream>> Open(EngineClient* client, const std::string& path,
                                                      const std::string& body);
  ~HijackedStream();
  Status Write(std::string_view data);
  // Half-closes the write side: stdin ends.
  void CloseWrite();
  // Reads what comes; "" at the end of the stream, kUnavailable when `timeout` passes first.
  Result<std::string> Read(std::chrono::milliseconds timeout);
  // Makes a blocked Read return.
  void Shutdown();

 private:
  HijackedStream() = default;
  int fd_ = -1;  // set once by Open, closed by the destructor: never changes while in use
  std::atomic<bool> eof_{false};
  std::string pending_;  // output that arrived with the response headers (the reader's)
};

}  // namespace mentat::docker
