// Helpers for end-to-end tests that start the real Mentat binaries: processes with captured
// output, free ports, temp dirs, HTTP, and waiting on a condition with a deadline (never a
// bare sleep).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mentat::e2e {

// Path of a data dependency, e.g. "cmd/mt/mt", inside the test's runfiles.
std::string Runfile(const std::string& path);

// A fresh directory under TEST_TMPDIR, removed at exit unless the test failed.
std::string TempDir(const std::string& prefix);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

std::string ReadFile(const std::string& path);

// Whether `text` has a match of the regular expression `pattern` (ECMAScript) anywhere.
bool Has(const std::string& text, const std::string& pattern);
void WriteFile(const std::string& path, const std::string& content);

// Polls `cond` every `every` until it returns true or `deadline` passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline,
             std::chrono::milliseconds every = std::chrono::milliseconds(20));

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs a command to completion, with optional extra environment ("K=V").
CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// The same, with `input` (when given) as its stdin rather than /dev/null.
CommandResult RunCommandWithInput(const std::vector<std::string>& argv,
                                  const std::optional<std::string>& input,
                                  const std::vector<std::string>& env = {});

// A long-running child process (a server or an agent), killed when destroyed.
class Process {
 public:
  Process(std::vector<std::string> argv, std::string log_path);
  ~Process();
  Process(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // Waits for exit; returns the exit status (as from waitpid) or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
};

// The argv of mentat-server listening on 127.0.0.1:port with its store under data_dir.
std::vector<std::string> ServerArgv(int port, const std::string& data_dir,
                                    const std::vector<std::string>& extra = {});
// Starts mentat-server and waits (up to 15 s) until /healthz answers; nullptr if it does not.
std::unique_ptr<Process> StartServer(int port, const std::string& data_dir,
                                     const std::string& log_path,
                                     const std::vector<std::string>& extra = {});

// GET http://127.0.0.1:port/path: status code (0 when unreachable) and body.
std::pair<int, std::string> HttpGet(int port, const std::string& path);

// Watch clients. What a watch request got: its status (0 when no answer came) and, when it was
// refused, the error body.
struct WatchOpening {
  int status = 0;
  std::string body;
};
// Streams a watch (a GET of `path` from 127.0.0.1:port, say
// "/v1/services?watch=true&resourceVersion=7") and hands `on_event` each event line, parsed,
// until it returns false: the client then hangs up. Returns when it hangs up, when the stream
// ends or breaks, or when nothing came for `silence` (keep it above the server's 5 s bookmark
// interval unless a silent member is what the caller wants to leave).
WatchOpening StreamWatch(int port, const std::string& path,
                         const std::function<bool(const nlohmann::json&)>& on_event,
                         std::chrono::milliseconds silence = std::chrono::seconds(10));

// The first `want` events of a watch, bookmarks left out (or the refusal).
struct WatchStart {
  int status = 0;                      // 0 when the request failed before a status arrived
  std::string body;                    // an error body, if the watch was refused
  std::vector<nlohmann::json> events;  // the first events of an accepted watch stream
};
WatchStart OpenWatch(int port, const std::string& path, size_t want);

// One watch event as a client processed it, and the object revision it carries.
struct WatchedEvent {
  std::string type;
  std::string name;
  int64_t rv = 0;
  bool operator==(const WatchedEvent&) const = default;
};
// gtest prints a WatchedEvent as "12 ADDED s3".
void PrintTo(const WatchedEvent& e, std::ostream* os);
int64_t RvOf(const nlohmann::json& object);
// Where two event sequences part, with a few events of each from there; "" when equal.
std::string FirstDifference(const std::vector<WatchedEvent>& got,
                            const std::vector<WatchedEvent>& want);

// True while a process with this pid exists and is not a zombie.
bool ProcessAlive(pid_t pid);

// Makes a throwaway CA and a server certificate for 127.0.0.1 signed by it, with openssl:
// dir/ca.crt, dir/server.crt, dir/server.key. Returns openssl's error output, "" on success.
std::string MakeTestCertificates(const std::string& dir);

// A process's resident memory (VmRSS) in KiB; -1 when it cannot be read.
long RssKb(pid_t pid);
// Its peak resident memory so far (VmHWM) in KiB; -1 when it cannot be read.
long PeakRssKb(pid_t pid);
// The CPU time a process has used so far, user and system, in seconds; -1 when it cannot be read.
double CpuSeconds(pid_t pid);

// For benchmarks: base64 (etcd's JSON gateway takes keys and values so), and the p-th
// percentile (0..1) of a sample.
std::string Base64(const std::string& in);
double Percentile(std::vector<double> v, double p);

}  // namespace mentat::e2e
