// Running tasks through their drivers: start (with the rootfs, security profile and the
// `starting` marker), restart policy with backoff, exits, and recovery from persisted handles
// after an agent restart.
#include <spdlog/spdlog.h>

#include "apis/event.h"
#include "apis/security_profile.h"
#include "runtimes/agent/agent.h"
#include "runtimes/agent/orphans.h"

namespace mentat {
using namespace std::chrono_literals;

void Agent::RecoverTasks() {
  RecoverHandles();
  // Starts a crash interrupted: kill what they left running that no handle records.
  handles_.SweepMarkers([this](const std::string& task_id) {
    int keep = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [key, t] : tasks_) {
        if (t.handle.id == task_id && t.running) keep = t.pid;
      }
    }
    KillUnrecordedProcesses(task_id, keep);
  });
}

void Agent::RecoverHandles() {
  for (auto& [key, t] : handles_.ReadHandles(opts_.logs)) {
    Driver* driver = DriverFor(t.driver);
    auto st = driver ? driver->Recover(t.handle)
                     : Status(InvalidArgument("no driver " + t.driver + " on this agent"));
    if (st) {
      t.running = true;
      ResetChecks(t);  // with checks, they decide
      // The event needs the Allocation, which the sync loop has not listed yet: Reconcile emits it.
      t.adopted_event_due = true;
      spdlog::info("agent: recovered {} (pid {}) without restarting it", key, t.pid);
    } else {
      t.running = false;
      t.last_exit = ExitResult{};
      t.last_exit->message = "exited while the agent was down";
      t.message = st.error().message();
      spdlog::info("agent: {} is no longer running: {}", key, st.error().message());
    }
    std::lock_guard<std::mutex> lock(mu_);
    tasks_[key] = std::move(t);
  }
}

LocalTask& Agent::TrackTask(const std::string& key, const Json& alloc, const ServiceSpec& spec,
                            const std::string& hash) {
  if (auto it = tasks_.find(key); it != tasks_.end()) return it->second;
  const Json task_spec = alloc.at("spec").value("task", Json::object());
  LocalTask t;
  t.driver = spec.driver;
  t.alloc_uid = alloc.at("metadata").value("uid", "");
  t.spec_hash = hash;
  t.artifact = ArtifactOf(task_spec);
  t.generation = alloc.at("metadata").value("generation", int64_t{1});
  t.port = spec.port;
  t.checks_spec = {{"port", spec.port}};
  if (task_spec.contains("checks")) t.checks_spec["checks"] = task_spec["checks"];
  t.logs = LogLimitsFor(task_spec.value("logs", Json()), opts_.logs);
  t.restart_policy = spec.restart;
  t.pids_limit = task_spec.value("resources", Json::object()).value("pids", int64_t{0});
  return tasks_.emplace(key, std::move(t)).first->second;
}

void Agent::ScheduleRestart(const std::string& key, LocalTask& t) {
  bool failed = !(t.last_exit->exit_code && *t.last_exit->exit_code == 0);
  bool restart = t.restart_policy == "always" || (t.restart_policy == "on-failure" && failed);
  if (!restart) {
    t.restart_pending = false;
    return;
  }
  if (t.restart_pending) return;
  // A task that ran a while starts its backoff over.
  if (std::chrono::steady_clock::now() - t.started_mono > 30s) t.backoff_exp = 0;
  auto delay = std::min<std::chrono::milliseconds>(1000ms * (1 << std::min(t.backoff_exp, 6)), 60s);
  t.backoff_exp++;
  t.restart_pending = true;
  t.restart_at = std::chrono::steady_clock::now() + delay;
  t.message = t.last_exit->message + "; restarting in " +
              std::to_string(delay.count() / 1000.0).substr(0, 4) + "s";
  queue_.AddAfter(key, delay);
}

Status Agent::StartTask(const std::string& key, const Json& alloc, const ServiceSpec& spec,
                        std::unique_lock<std::mutex>& lock) {
  LocalTask& t = tasks_.at(key);
  Driver* driver = DriverFor(t.driver);
  if (!driver) {
    t.message = "driver " + t.driver + " is not available on node " + opts_.node_name;
    t.last_exit = ExitResult{std::nullopt, std::nullopt, false, t.message};
    t.restart_policy = "never";
    return {};
  }
  TaskConfig cfg;
  cfg.id = TaskIdForKey(key);
  cfg.identity = {NamespaceOf(alloc), alloc.at("spec").value("service", ""), NameOf(alloc),
                  alloc.at("spec").value("index", -1)};
  cfg.command = spec.command;
  cfg.args = spec.args;
  cfg.env = spec.env;
  cfg.cwd = spec.cwd;
  cfg.task_dir = handles_.TaskDir(key);
  cfg.spec = alloc.value("spec", Json::object()).value("task", Json::object());
  cfg.log_limits = t.logs;
  cfg.env.push_back({kTaskIdEnv, cfg.id});
  bool was_restart = t.last_exit.has_value();
  t.artifact = ArtifactOf(cfg.spec);  // what this start uses, whatever a handle said
  lock.unlock();
  // A rootfs `mt apply` uploaded (sha256:...) is fetched and unpacked once per node; the
  // driver gets its local directory. If that fails (a limit, the node's budget), the task
  // fails to start, saying why. The lease holds the tree until the task (t.artifact) holds it
  // for garbage collection, in RecordStart.
  auto lease = ResolveRootfs(*artifacts_, cfg.spec);
  Status rootfs = lease ? Status() : Status(std::unexpected(lease.error()));
  // The driver completes its fields with what the agent looks up (the docker driver: the
  // SecurityProfile as the server holds it now); when that fails the start fails (and is
  // retried): never a start without its profile.
  ConfigSources sources;
  sources.attach_security_profile = [this](Json& spec) { return AttachSecurityProfile(spec); };
  if (rootfs) rootfs = driver->ResolveConfig(cfg, sources);
  // Until the handle is written, a crash would leave a process no handle knows: the marker
  // lets the next agent find and kill it (orphans.h).
  if (rootfs) MT_RETURN_IF_ERROR(handles_.WriteMarker(key, cfg.id));
  auto handle = rootfs ? driver->Start(cfg) : Result<TaskHandle>(std::unexpected(rootfs.error()));
  lock.lock();
  auto again = tasks_.find(key);
  if (again == tasks_.end()) return {};
  return RecordStart(key, again->second, *driver, handle, was_restart);
}

Status Agent::RecordStart(const std::string& key, LocalTask& t, Driver& driver,
                          const Result<TaskHandle>& handle, bool was_restart) {
  if (!handle) {
    t.message = handle.error().message();
    t.last_exit = ExitResult{std::nullopt, std::nullopt, false, t.message};
    t.restart_pending = false;
    spdlog::warn("agent: starting {}: {}", key, t.message);
    EmitLocked(key, kEventWarning, "FailedStart", t.message);
    // A bad spec will not fix itself; a restart policy still retries with backoff.
    if (t.restart_policy != "never") queue_.AddRateLimited(key);
    return {};
  }
  t.handle = *handle;
  t.running = true;
  t.pids_limit_hits = 0;  // a new run, a new cgroup: its own count
  ResetChecks(t);
  t.pid = handle->state.value("pid", 0);
  t.started_at = handle->state.value("startedAt", "");
  t.started_mono = std::chrono::steady_clock::now();
  t.restart_pending = false;
  t.message.clear();
  if (was_restart) t.restarts++;
  // A task may exit before this point; its exit handler then found nothing running. Its
  // restart is scheduled here, before any status is reported: between the two, the task
  // would read as Failed, which a rollout takes as final.
  if (auto st = driver.Inspect(handle->id); st && st->exit) {
    t.running = false;
    t.last_exit = st->exit;
    // A memory hog can be killed before Start has even returned.
    if (st->exit->oom_killed) EmitLocked(key, kEventWarning, "OOMKilled", st->exit->message);
    ScheduleRestart(key, t);
    if (!t.restart_pending) queue_.Add(key);
  }
  MT_RETURN_IF_ERROR(handles_.WriteHandle(key, t));
  handles_.ClearMarker(key);
  spdlog::info("agent: started {} (pid {})", key, t.pid);
  if (was_restart) {
    EmitLocked(key, kEventWarning, "Restarted",
               "restart " + std::to_string(t.restarts) + " on node " + opts_.node_name + ", pid " +
                   std::to_string(t.pid) + (t.last_exit ? "; it had " + t.last_exit->message : ""));
  } else {
    EmitLocked(key, kEventNormal, "Started",
               "started on node " + opts_.node_name + ", pid " + std::to_string(t.pid));
  }
  return {};
}

Status Agent::AttachSecurityProfile(Json& spec) {
  if (!spec.contains("security") || !spec["security"].is_object()) return {};
  std::string name = spec["security"].value("profile", "");
  if (name.empty()) return {};
  if (!client_) return Unavailable("security profile " + name + ": no server to read it from");
  auto got = client_->Get("securityprofiles", name);
  if (!got) {
    if (got.error().code() == Code::kNotFound) {
      // Not stored: a built-in profile is the driver's own (null); any other name is refused.
      for (const auto& p : BuiltinProfiles()) {
        if (p["metadata"].value("name", "") == name) return {};
      }
      return MakeError(Code::kFailedPrecondition, "security profile " + name + " does not exist on the server");
    }
    return Unavailable("security profile " + name + " is unavailable: " + got.error().message() +
                       " (the start is retried)");
  }
  spec["security"]["resolved"] = got->value("spec", Json::object());
  return {};
}

void Agent::OnExit(const std::string& task_id, const ExitResult& exit) {
  std::string key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, t] : tasks_) {
      if (t.handle.id != task_id || !t.running) continue;
      t.running = false;
      t.ready = false;
      t.last_exit = exit;
      key = k;
      if (exit.oom_killed) EmitLocked(k, kEventWarning, "OOMKilled", exit.message);
      // Forks refused since the last sample (a shell dies at its first refused fork, before
      // any sample may have seen it).
      if (exit.pids_limit_hits > t.pids_limit_hits) {
        EmitLocked(k, kEventWarning, "PidsLimitReached",
                   "the pids limit refused " + std::to_string(exit.pids_limit_hits - t.pids_limit_hits) +
                       " fork(s) (" + std::to_string(exit.pids_limit_hits) + " in this run)");
        t.pids_limit_hits = exit.pids_limit_hits;
      }
      break;
    }
  }
  if (!key.empty()) {
    spdlog::info("agent: task {} {}", key, exit.message);
    queue_.Add(key);
  }
}

}  // namespace mentat
