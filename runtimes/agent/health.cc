#include "runtimes/agent/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <httplib.h>

namespace mentat {
namespace {

using std::chrono::milliseconds;

CheckResult Tcp(int port, milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return {false, std::string("socket: ") + std::strerror(errno)};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CheckResult r;
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc == 0) {
    r.ok = true;
  } else if (errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      r.ok = err == 0;
      if (err) r.error = std::strerror(err);
    } else {
      r.error = "no connection within " + FormatDuration(timeout);
    }
  } else {
    r.error = std::strerror(errno);
  }
  ::close(fd);
  if (!r.ok) r.error = "port " + std::to_string(port) + ": " + r.error;
  return r;
}

CheckResult Http(int port, const std::string& path, milliseconds timeout) {
  httplib::Client client("127.0.0.1", port);
  auto secs = [](milliseconds d) { return std::pair<time_t, time_t>(d.count() / 1000, (d.count() % 1000) * 1000); };
  auto [s, us] = secs(timeout);
  client.set_connection_timeout(s, us);
  client.set_read_timeout(s, us);
  client.set_write_timeout(s, us);
  auto res = client.Get(path);
  if (!res) {
    switch (res.error()) {
      case httplib::Error::Connection:
        return {false, "GET " + path + ": cannot connect to port " + std::to_string(port)};
      case httplib::Error::ConnectionTimeout:
      case httplib::Error::Read:
        return {false, "GET " + path + ": no answer within " + FormatDuration(timeout)};
      default:
        return {false, "GET " + path + ": " + httplib::to_string(res.error())};
    }
  }
  if (res->status >= 200 && res->status < 400) return {true, ""};
  return {false, "GET " + path + ": HTTP " + std::to_string(res->status)};
}

CheckResult Exec(const CheckSpec& check, Driver* driver, const std::string& task_id) {
  if (!driver) return {false, "no driver for the task"};
  ExecOptions opts;
  opts.command = check.command;
  std::string output;
  std::mutex mu;
  ExecCallbacks cb;
  cb.output = [&](ExecStream, std::string_view data) {
    std::lock_guard<std::mutex> lock(mu);
    if (output.size() < 256) output.append(data.substr(0, 256 - output.size()));
  };
  cb.exit = [](const ExitResult&) {};
  auto session = driver->Exec(task_id, opts, std::move(cb));
  if (!session) return {false, session.error().message()};
  auto exit = (*session)->Wait(check.timeout);
  if (!exit) {
    (*session)->Kill();
    return {false, "timed out after " + FormatDuration(check.timeout)};
  }
  if (exit->exit_code && *exit->exit_code == 0) return {true, ""};
  std::lock_guard<std::mutex> lock(mu);
  std::string why = exit->exit_code ? "exit code " + std::to_string(*exit->exit_code)
                                    : "killed by signal " + std::to_string(exit->signal.value_or(0));
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return {false, why + (output.empty() ? "" : ": " + output)};
}

milliseconds DurationField(const Json& c, const char* field, milliseconds fallback) {
  if (!c.contains(field) || !c[field].is_string()) return fallback;
  auto d = ParseDuration(c[field].get<std::string>());
  return d ? *d : fallback;
}

}  // namespace

std::string CheckSpec::Describe() const {
  if (type == "exec") {
    std::string cmd;
    for (const auto& a : command) cmd += (cmd.empty() ? "" : " ") + a;
    return "exec " + cmd;
  }
  return type + " :" + std::to_string(port) + (type == "http" ? path : "");
}

std::vector<CheckSpec> CheckSpec::ForSpec(const Json& spec) {
  std::vector<CheckSpec> out;
  for (const auto& c : spec.value("checks", Json::array())) {
    CheckSpec s;
    s.type = c.value("type", "");
    s.port = c.value("port", 0);
    s.path = c.value("path", "/");
    if (c.contains("command") && c["command"].is_array()) {
      for (const auto& a : c["command"]) {
        if (a.is_string()) s.command.push_back(a);
      }
    }
    s.interval = DurationField(c, "interval", s.interval);
    s.timeout = DurationField(c, "timeout", s.timeout);
    s.success_threshold = c.value("success_threshold", 1);
    s.failure_threshold = c.value("failure_threshold", 3);
    out.push_back(std::move(s));
  }
  if (out.empty() && spec.value("port", 0) > 0) {
    CheckSpec s;
    s.type = "tcp";
    s.port = spec["port"];
    s.interval = milliseconds(50);
    s.timeout = milliseconds(200);
    s.failure_threshold = 1;
    out.push_back(std::move(s));
  }
  return out;
}

bool CheckState::Record(bool ok, const std::string& error) {
  bool was = passing;
  if (ok) {
    failures = 0;
    ++passes;
    last_error.clear();
    if (passes >= spec.success_threshold) passing = true;
  } else {
    passes = 0;
    ++failures;
    last_error = error;
    if (failures >= spec.failure_threshold) passing = false;
  }
  return was != passing;
}

CheckResult RunCheck(const CheckSpec& check, Driver* driver, const std::string& task_id) {
  if (check.type == "tcp") return Tcp(check.port, check.timeout);
  if (check.type == "http") return Http(check.port, check.path, check.timeout);
  if (check.type == "exec") return Exec(check, driver, task_id);
  return {false, "unknown check type \"" + check.type + "\""};
}

CheckRunner::CheckRunner(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

CheckRunner::~CheckRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void CheckRunner::Submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void CheckRunner::Work() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace mentat
