// How the Docker driver learns of exits and reports them: die and oom events, a look again
// after dockerd reconnects, unverified recovered tasks checked with backoff, and the reporter
// thread that calls the exit handler once per container after its logs are in the files.
#include "runtimes/docker/docker_driver.h"

#include <algorithm>
#include <chrono>
#include <fstream>

#include <spdlog/spdlog.h>

#include "runtimes/docker/container_exit.h"

namespace mentat {

using namespace std::chrono_literals;

void DockerDriver::CheckExited(const std::shared_ptr<Task>& t) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Still starting: not started yet reads as "created", not as an exit. Start looks again.
    if (t->exited || t->starting) return;
  }
  auto info = engine_->InspectContainer(t->container);
  ExitResult r;
  if (info) {
    if ((*info)["State"].value("Running", false)) {
      std::lock_guard<std::mutex> lock(mu_);
      t->unverified = false;
      return;
    }
    // Created and never started is no exit (a start in flight elsewhere).
    if ((*info)["State"].value("Status", "") == "created") return;
    r = ExitFromState((*info)["State"], (*info)["HostConfig"].value("Memory", int64_t{0}) >> 20);
  } else if (info.error().code() == Code::kNotFound) {
    r.message = "container " + t->name + " was removed";
  } else {
    return;  // dockerd is away: the reconnection looks again
  }
  RecordExit(t, r);
}

void DockerDriver::RecordExit(const std::shared_ptr<Task>& t, const ExitResult& exit) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (t->exited) return;
    t->exited = true;  // claimed: a concurrent caller stops here
    // Reported on the reporter thread: joining the log pump may take a while, and the events
    // thread (a caller) must stay free for every other container's die and oom.
    reports_.emplace_back(t, exit);
  }
  cv_.notify_all();
}

void DockerDriver::ReportLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return reporter_stop_ || !reports_.empty(); });
    if (reports_.empty()) return;  // stopping, and everything reported
    auto [t, r] = std::move(reports_.front());
    reports_.pop_front();
    lock.unlock();
    Report(t, r);
    lock.lock();
  }
}

void DockerDriver::Report(const std::shared_ptr<Task>& t, ExitResult r) {
  // Everything the container wrote is in the files before its exit is reported: the followed
  // stream ends with the container. (A container that exits at once may die before Start has
  // set its pump up: wait for that first.)
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, 30s, [&] { return t->pump_ready; });
  }
  t->JoinPump();
  // docker-init says why a program could not run (126, 127) on stderr: the exit says it too.
  if (r.exit_code && (*r.exit_code == 126 || *r.exit_code == 127) && !t->task_dir.empty()) {
    std::ifstream f(t->task_dir + "/stderr.log");
    std::string line, last_line;
    while (std::getline(f, line)) {
      if (!line.empty()) last_line = line;
    }
    if (!last_line.empty()) r.message += ": " + last_line;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    t->exit = r;
    t->exit_known = true;
  }
  cv_.notify_all();
  spdlog::info("docker: {} {}", t->id, r.message);
  // The agent knows tasks by id: a container of an earlier run of the same task (a failed
  // start, a replaced container) must not report as the task now registered under that id.
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(t->id);
    if (t->unregistered || (it != tasks_.end() && it->second != t)) {
      spdlog::info("docker: not reporting the exit of {}'s earlier container {}", t->id, t->container.substr(0, 12));
      return;
    }
  }
  if (exit_handler_) exit_handler_(t->id, r);
}

void DockerDriver::Unregister(const std::shared_ptr<Task>& t, bool remove_container) {
  t->stop_logs = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t->exited = true;  // nothing reports it
    t->unregistered = true;  // nor an exit claimed before (OnLost) and reported later
    t->pump_ready = true;
    auto it = tasks_.find(t->id);
    if (it != tasks_.end() && it->second == t) tasks_.erase(it);
  }
  cv_.notify_all();
  if (remove_container) engine_->RemoveContainer(t->container, /*force=*/true);
  t->JoinPump();
}

void DockerDriver::VerifyLoop() {
  // Tasks Recover could not look at (dockerd slow or failing, not "no such container"): kept
  // registered, and looked at again with backoff until dockerd answers.
  auto backoff = 200ms;
  std::unique_lock<std::mutex> lock(mu_);
  while (!reporter_stop_) {
    cv_.wait_for(lock, backoff, [&] { return reporter_stop_; });
    if (reporter_stop_) return;
    std::vector<std::shared_ptr<Task>> todo;
    for (auto& [id, t] : tasks_) {
      if (t->unverified && !t->exited) todo.push_back(t);
    }
    if (todo.empty()) {
      backoff = 200ms;
      continue;
    }
    lock.unlock();
    for (auto& t : todo) CheckExited(t);
    lock.lock();
    bool left = false;
    for (auto& t : todo) left |= t->unverified && !t->exited;
    backoff = left ? std::min<std::chrono::milliseconds>(backoff * 2, 5s) : 200ms;
  }
}

void DockerDriver::OnEvent(const Json& e) {
  std::string action = e.value("Action", e.value("status", ""));
  std::string id = e.value("Actor", Json::object()).value("ID", e.value("id", ""));
  if (action.rfind("health_status", 0) == 0) {
    // The image's own HEALTHCHECK ("health_status: unhealthy"): Mentat's checks decide
    // readiness, so this is said in the agent's log, not acted on (the Driver interface has
    // no place for it yet).
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, task] : tasks_) {
      if (task->container == id) spdlog::info("docker: {} reports {}", tid, action);
    }
    return;
  }
  if (action != "die" && action != "oom") return;
  std::shared_ptr<Task> t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, task] : tasks_) {
      if (task->container == id) t = task;
    }
  }
  if (t) CheckExited(t);
}

void DockerDriver::OnReconnect() {
  std::vector<std::shared_ptr<Task>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, t] : tasks_) {
      if (!t->exited) all.push_back(t);
    }
  }
  for (auto& t : all) CheckExited(t);
}

void DockerDriver::OnLost(const std::string& error) {
  // The agent restarts what it must (its next Start replaces a container that did survive, as
  // with live-restore), and says why while dockerd is away.
  std::vector<std::shared_ptr<Task>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, t] : tasks_) {
      if (!t->exited) all.push_back(t);
    }
  }
  for (auto& t : all) {
    t->stop_logs = true;  // its log stream is gone with dockerd
    ExitResult r;
    r.message = "lost: " + error;
    RecordExit(t, r);
  }
}

}  // namespace mentat
