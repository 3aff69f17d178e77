// mt logs: a service's or an allocation's output, read through the server, which relays it
// from the agent of the node it runs on (mt never calls an agent itself). By default both
// streams, merged in the order they were written (the agent's stream=all, apis/log_lines.h),
// stderr's lines marked "stderr: "; --stdout or --stderr: only that stream, as written. With -f
// it follows: across restarts of the task (the logs are appended), across a new allocation in
// the same slot (they start over), and across agent restarts (it reconnects from the last byte
// it had of each stream). For a service, new allocations are picked up as they appear.
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>

#include "apis/log_lines.h"
#include "apis/object.h"
#include "cmd/mt/args.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"

namespace mentat::mt {
namespace {

using namespace std::chrono_literals;

std::mutex out_mu;  // lines of several allocations never interleave mid-line

// How one allocation's log is asked for and printed. A connection: Query, then Feed with each
// piece of the body, then Resume with the X-Log-Start header (where the body began), so that
// the next connection's Query goes on from the last byte printed.
class LogPrinter {
 public:
  virtual ~LogPrinter() = default;
  // The stream and, after a first connection, offset parameters.
  virtual std::string Query() const = 0;
  virtual bool resuming() const = 0;
  // Prints the whole lines `d` completes.
  virtual void Feed(const char* d, size_t n) = 0;
  virtual void Resume(const std::string& x_log_start) = 0;
  // The end of all output: what is left of a line.
  virtual void Finish() = 0;
  bool printed_any = false;
};

// One stream, its bytes as written (--stdout or --stderr alone).
class RawPrinter : public LogPrinter {
 public:
  RawPrinter(std::string stream, std::string prefix) : stream_(std::move(stream)), prefix_(std::move(prefix)) {}
  std::string Query() const override {
    return "&stream=" + stream_ + (next_ >= 0 ? "&offset=" + std::to_string(next_) : "");
  }
  bool resuming() const override { return next_ >= 0; }
  void Feed(const char* d, size_t n) override {
    received_ += static_cast<int64_t>(n);
    partial_.append(d, n);
    size_t nl;
    std::lock_guard<std::mutex> lock(out_mu);
    while ((nl = partial_.find('\n')) != std::string::npos) {
      std::cout << prefix_ << partial_.substr(0, nl + 1);
      partial_.erase(0, nl + 1);
      printed_any = true;
    }
    std::cout.flush();
  }
  void Resume(const std::string& start) override {
    if (!start.empty()) next_ = std::stoll(start) + received_;
    received_ = 0;
  }
  void Finish() override {
    if (partial_.empty()) return;
    std::lock_guard<std::mutex> lock(out_mu);
    std::cout << prefix_ << partial_ << "\n";
  }

 private:
  std::string stream_, prefix_;
  int64_t next_ = -1;      // the byte to resume from; -1 until the agent has said where we are
  int64_t received_ = 0;   // in this connection
  std::string partial_;    // a line not yet ended
};

// Both streams merged, each line "time stream F|P content" (apis/log_lines.h): printed as
// [prefix][time ]["stderr: "]content, only the streams asked for.
class MergedPrinter : public LogPrinter {
 public:
  MergedPrinter(const LogsFlags& f, std::string prefix)
      : prefix_(std::move(prefix)),
        show_out_(f.stdout_ || !f.stderr_),
        show_err_(f.stderr_ || !f.stdout_),
        mark_(show_out_ && show_err_),
        timestamps_(f.timestamps) {}
  std::string Query() const override {
    return "&stream=all" + (next_ ? "&offset=" + FormatLogOffsets(next_->first, next_->second) : "");
  }
  bool resuming() const override { return next_.has_value(); }
  void Feed(const char* d, size_t n) override {
    buf_.append(d, n);
    size_t nl;
    std::lock_guard<std::mutex> lock(out_mu);
    while ((nl = buf_.find('\n')) != std::string::npos) {
      auto line = ParseLogLine(std::string_view(buf_).substr(0, nl));
      buf_.erase(0, nl + 1);
      if (!line) continue;
      const bool err = line->stream == "stderr";
      (err ? received_.second : received_.first) += line->bytes();
      if (err ? !show_err_ : !show_out_) continue;
      std::cout << prefix_ << (timestamps_ ? line->time + " " : "")
                << (err && mark_ ? Paint(Stream::kOut, colour::kRed, "stderr:") + " " : "")
                << line->content << "\n";
      printed_any = true;
    }
    std::cout.flush();
  }
  void Resume(const std::string& start) override {
    // A line cut off by the disconnect was not counted: it comes again.
    buf_.clear();
    if (auto at = ParseLogOffsets(start)) {
      next_ = {at->first + received_.first, at->second + received_.second};
    }
    received_ = {0, 0};
  }
  void Finish() override {}

 private:
  std::string prefix_;
  bool show_out_, show_err_, mark_, timestamps_;
  std::optional<std::pair<int64_t, int64_t>> next_;  // each stream's byte to resume from
  std::pair<int64_t, int64_t> received_{0, 0};       // each stream's bytes in this connection
  std::string buf_;                                  // a line of the body not yet ended
};

std::unique_ptr<LogPrinter> PrinterFor(const LogsFlags& f, const std::string& prefix) {
  // One stream without timestamps: its bytes exactly as written. Anything else needs the index.
  if (f.stdout_ != f.stderr_ && !f.timestamps) {
    return std::make_unique<RawPrinter>(f.stderr_ ? "stderr" : "stdout", prefix);
  }
  return std::make_unique<MergedPrinter>(f, prefix);
}

// True when the allocation no longer exists (not when the server cannot say).
bool AllocationGone(ApiClient& server, const std::string& ns, const std::string& alloc) {
  RequestOptions ro;
  ro.ns = ns;
  auto a = server.Get("allocations", alloc, ro);
  return !a && a.error().code() == Code::kNotFound;
}

// Streams one allocation's log to stdout, each line prefixed when `prefix` is set. Returns
// when the log ends (without follow), or, with follow, when `stop` is set or the allocation
// is gone.
Status StreamOne(ApiClient& server, const LogsFlags& f, std::optional<int64_t> since_ms,
                 const std::string& ns, const std::string& alloc, const std::string& prefix,
                 const std::atomic<bool>& stop) {
  auto printer = PrinterFor(f, prefix);
  while (!stop) {
    std::string path = "/v1/allocations/" + alloc + "/logs?namespace=" + ns + printer->Query();
    if (f.follow) path += "&follow=true";
    if (!printer->resuming()) {
      if (since_ms) path += "&since=" + std::to_string(*since_ms);
      if (f.tail >= 0) path += "&tail=" + std::to_string(f.tail);
    }
    std::map<std::string, std::string> headers;
    auto st = server.GetStream(
        path,
        [&](const char* d, size_t n) {
          printer->Feed(d, n);
          return !stop.load();
        },
        &stop, &headers);
    printer->Resume(headers.count("X-Log-Start") ? headers["X-Log-Start"] : "");
    if (!st) {
      const Code code = st.error().code();
      if (!f.follow || code == Code::kUnauthenticated || code == Code::kForbidden ||
          code == Code::kInvalidArgument) {
        return st;
      }
      // Not found: the allocation is gone (the end of its log, once some was printed), or its
      // task has not started yet (its log comes).
      if (code == Code::kNotFound && AllocationGone(server, ns, alloc)) {
        return printer->printed_any ? Status() : st;
      }
    }
    if (!f.follow) break;
    // Pacing between attempts: not placed yet, the agent or its node away, or a quiet log
    // whose connection the server ended. The next one resumes from the last byte printed.
    std::this_thread::sleep_for(500ms);
  }
  printer->Finish();
  return {};
}

}  // namespace

int RunLogs(ApiClient& client, const LogsFlags& f) {
  std::optional<int64_t> since_ms;
  if (!f.since.empty()) {
    // Sent as Unix milliseconds: "5m" means 5 minutes before now on this machine's clock.
    auto ago = ParseDuration(f.since);
    int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    since_ms = ago ? std::optional<int64_t>(now_ms - ago->count()) : ParseRfc3339Millis(f.since);
    if (!since_ms) {
      return UsageError("--since must be a duration (30s, 5m, 1h) or an RFC 3339 time "
                        "(2026-11-22T06:20:48Z), got \"" + f.since + "\"");
    }
  }
  RequestOptions ro;
  ro.ns = f.ns;
  // NAME is an allocation, or else a service whose allocations are followed together.
  std::vector<std::string> allocs;
  bool service = false;
  auto a = client.Get("allocations", f.name, ro);
  if (a) {
    allocs.push_back(f.name);
  } else if (a.error().code() == Code::kNotFound) {
    auto svc = client.Get("services", f.name, ro);
    if (!svc) {
      return PrintError(Error(Code::kNotFound, "no allocation or service named \"" + f.name +
                                                   "\" in namespace " + f.ns));
    }
    service = true;
    RequestOptions sel = ro;
    sel.label_selector = std::string(kLabelService) + "=" + f.name;
    auto list = client.List("allocations", sel);
    if (!list) return PrintError(list.error());
    for (const auto& item : (*list)["items"]) allocs.push_back(NameOf(item));
  } else {
    return PrintError(a.error());
  }
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> started;
  std::vector<std::thread> threads;
  std::optional<Error> failure;
  auto follow = [&](const std::string& alloc) {
    std::lock_guard<std::mutex> lock(mu);
    if (!started.insert(alloc).second) return;
    std::string prefix = service ? "[" + alloc + "] " : "";
    threads.emplace_back([&, alloc, prefix] {
      auto st = StreamOne(client, f, since_ms, f.ns, alloc, prefix, stop);
      if (!st) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = st.error();
      }
    });
  };
  for (const auto& alloc : allocs) follow(alloc);
  if (service && f.follow) {
    // New allocations of the service (a scale-up, a replacement) join as they appear.
    RequestOptions sel = ro;
    sel.label_selector = std::string(kLabelService) + "=" + f.name;
    auto st = client.Watch("allocations", 0, sel, [&](const Json& ev) {
      if (ev.value("type", "") == "ADDED") follow(NameOf(ev["object"]));
      return true;
    });
    if (!st) {
      stop = true;
      for (auto& t : threads) t.join();
      return PrintError(st.error());
    }
  }
  for (size_t i = 0;; ++i) {
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (i >= threads.size()) break;
      t = std::move(threads[i]);
    }
    t.join();
  }
  if (failure) return PrintError(*failure);
  return kExitOk;
}

Command AddLogsCommand(CLI::App& app) {
  auto f = std::make_shared<LogsFlags>();
  auto* logs = app.add_subcommand(
      "logs",
      "print (-f: follow) a service's or an allocation's output: stdout and stderr in order");
  logs->add_option("name", f->name, "an allocation, or a service (all its allocations)")
      ->required();
  logs->add_flag("-f,--follow", f->follow,
                 "keep printing: across restarts, new allocations and agent restarts");
  logs->add_option("--tail", f->tail, "only the last N lines (then, with -f, what follows)");
  logs->add_flag("--stdout", f->stdout_, "only the standard output stream, as written");
  logs->add_flag("--stderr", f->stderr_, "only the standard error stream, as written");
  logs->add_flag("--timestamps", f->timestamps, "each line with when it was written (RFC 3339)");
  logs->add_option("--since", f->since,
                   "only what was written since: a duration (5m, 1h) or an RFC 3339 time");
  return {.cli = logs, .connected = [f](const Session& s) {
            f->ns = s.ns;
            return RunLogs(s.client, *f);
          }};
}

}  // namespace mentat::mt
