// The docker log pump (log_pump.h): one followed stream after another, each resumed at where
// the files end, until the container stops.
#include "runtimes/docker/log_pump.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "runtimes/logs/log_writer.h"

namespace mentat {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// (seconds, nanoseconds) of an RFC 3339 timestamp with up to 9 fraction digits, in UTC ("Z").
std::pair<int64_t, int64_t> ParseTimestamp(const std::string& ts) {
  struct tm tm = {};
  const char* rest = strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return {0, 0};
  int64_t nanos = 0;
  if (*rest == '.') {
    int digits = 0;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest, ++digits) {
      if (digits < 9) nanos = nanos * 10 + (*rest - '0');
    }
    for (; digits < 9; ++digits) nanos *= 10;
  }
  return {static_cast<int64_t>(timegm(&tm)), nanos};
}

class ContainerLogFollower {
 public:
  ContainerLogFollower(docker::EngineClient& engine, const FollowedContainer& c,
                       const std::atomic<bool>& stop, TaskLogWriter& writer)
      : engine_(engine), c_(c), stop_(stop), writer_(writer),
        since_file_(c.task_dir + "/" + kLogsSinceFile) {}

  // Streams until `stop` or the container stops, reconnecting with backoff.
  void Run();

 private:
  using Stamp = std::pair<int64_t, int64_t>;
  void LoadResumePoint();
  void SaveResumePoint(bool force);
  // One followed stream, from the resume point to its end.
  Status FollowOnce();

  docker::EngineClient& engine_;
  const FollowedContainer& c_;
  const std::atomic<bool>& stop_;
  TaskLogWriter& writer_;
  const std::string since_file_;
  // Where the files end, as "SECONDS.NANOS COUNT": the timestamp of the last message written
  // and how many messages of the container's log carry exactly that timestamp up to there
  // (Docker gives every 16 KiB piece of a long line the same one).
  Stamp last_{0, 0};
  int64_t last_count_ = 0;
  std::chrono::steady_clock::time_point saved_at_;
  bool dirty_ = false;
};

void ContainerLogFollower::LoadResumePoint() {
  std::ifstream f(since_file_);
  std::string s;
  if (f >> s) {
    auto dot = s.find('.');
    last_.first = std::atoll(s.substr(0, dot).c_str());
    if (dot != std::string::npos) last_.second = std::atoll(s.substr(dot + 1).c_str());
    if (!(f >> last_count_)) last_count_ = 0;
  }
}

// Written aside and renamed over: a kill -9 midway leaves the old file or the new, never an
// empty one. At most once a second while the stream runs, and when it ends.
void ContainerLogFollower::SaveResumePoint(bool force) {
  if (!dirty_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - saved_at_ < 1s) return;
  std::string tmp = since_file_ + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << last_.first << "." << std::setw(9) << std::setfill('0') << last_.second << " " << last_count_ << "\n";
    if (!f.flush()) return;
  }
  std::error_code ec;
  fs::rename(tmp, since_file_, ec);
  saved_at_ = now;
  dirty_ = false;
}

Status ContainerLogFollower::FollowOnce() {
  docker::LogsOptions o;
  o.follow = true;
  o.timestamps = true;
  o.raw = true;
  // The resume point of this stream, fixed as it starts: Docker's since is inclusive, so
  // what comes before it is skipped and so are the first `resume_count` messages at it.
  const Stamp resume = last_;
  const int64_t resume_count = last_count_;
  int64_t at_resume = 0;
  if (resume.first > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%lld.%09lld", static_cast<long long>(resume.first),
                  static_cast<long long>(resume.second));
    o.since = buf;
  }
  // Each frame is one log message: "TIMESTAMP payload". Frames split across reads are
  // put together first.
  std::string frame[3];
  auto write = [&](int stream, const std::string& msg) {
    auto sp = msg.find(' ');
    if (sp == std::string::npos) return;
    auto ts = ParseTimestamp(msg.substr(0, sp));
    if (resume.first > 0) {
      if (ts < resume) return;  // written before the agent restarted
      if (ts == resume && ++at_resume <= resume_count) return;
    }
    std::string_view payload(msg.data() + sp + 1, msg.size() - sp - 1);
    auto st = writer_.Append(stream == 2 ? LogStream::kStderr : LogStream::kStdout, payload,
                             ts.first * 1'000'000'000 + ts.second);
    if (!st) spdlog::warn("docker: logs of {}: {}", c_.task_id, st.error().message());
    if (ts == last_) {
      ++last_count_;
    } else if (ts > last_) {
      last_ = ts;
      last_count_ = 1;
    }
    dirty_ = true;
    SaveResumePoint(false);
  };
  docker::StreamDemuxer demux(
      [&](int stream, std::string_view d) {
        int s = stream == 2 ? 2 : 1;
        frame[s].append(d);
      },
      [&](int stream) {
        int s = stream == 2 ? 2 : 1;
        write(s, frame[s]);
        frame[s].clear();
      });
  return engine_.Logs(c_.container, o, [&](int stream, std::string_view d) {
    if (c_.tty) {
      // A TTY's output is not framed: each line carries its timestamp.
      frame[1].append(d);
      size_t nl;
      while ((nl = frame[1].find('\n')) != std::string::npos) {
        write(1, frame[1].substr(0, nl + 1));
        frame[1].erase(0, nl + 1);
      }
    } else {
      demux.Feed(d);
    }
  }, &stop_);
}

void ContainerLogFollower::Run() {
  LoadResumePoint();
  saved_at_ = std::chrono::steady_clock::now();
  auto backoff = 200ms;
  while (!stop_) {
    auto st = FollowOnce();
    SaveResumePoint(true);
    if (stop_) break;
    // The stream ends when the container stops: then there is nothing more to follow.
    auto info = engine_.InspectContainer(c_.container);
    if (info && !(*info)["State"].value("Running", false)) break;
    if (!info && info.error().code() == Code::kNotFound) break;
    if (!st) spdlog::warn("docker: following logs of {}: {}", c_.task_id, st.error().message());
    for (auto until = std::chrono::steady_clock::now() + backoff;
         !stop_ && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(20ms);
    }
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
  }
}

}  // namespace

void FollowContainerLogs(docker::EngineClient& engine, const FollowedContainer& c,
                         const std::atomic<bool>& stop) {
  // The pump is the logs' one writer: each message indexed at Docker's timestamp, so stdout
  // and stderr merge in order (log_writer.h), and rotated.
  auto writer = TaskLogWriter::Open(c.task_dir, c.log_limits);
  if (!writer) {
    spdlog::warn("docker: logs of {}: {}; not followed", c.task_id, writer.error().message());
    return;
  }
  ContainerLogFollower(engine, c, stop, **writer).Run();
}

}  // namespace mentat
