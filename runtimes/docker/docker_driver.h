// The Docker driver: tasks are containers of a local dockerd, driven through the Engine API
// (engine_client.h). See docs/docker.md.
//
// - Containers are named mentat-<task id> (the dot kept: unambiguous across namespaces) and
//   labelled mentat.service, mentat.allocation, mentat.namespace (the TaskConfig's identity),
//   mentat.node, mentat.task and mentat.spec-hash; Docker's restart policy is "no" (Mentat's own
//   restart policy applies).
// - Exits are learned from the /events stream (die, oom) at once; exit code and OOMKilled come
//   from inspect. When the stream reconnects (dockerd restarted), every task is inspected again.
// - The agent's log endpoint follows files, so a thread per task follows the container's log
//   stream into task_dir/stdout.log and stderr.log (indexed at Docker's timestamps and rotated,
//   runtimes/logs/log_writer.h), resuming after a restart from the last timestamp it wrote
//   (docker-logs.since) without duplicating lines.
// - Mars Mode: the handle holds the container id; Recover re-attaches to the same container.
//   `adopt: {container: NAME}` adopts an existing container (image and ports must match; never
//   a Mentat-labelled one; under a profile its inspected settings must keep the profile's rules).
//   CleanupOrphans removes labelled containers of this node that no task owns.
//
// The class's members are defined by concern: docker_driver.cc (lifecycle), adopt.cc,
// recover.cc, exits.cc (how exits are learned and reported) and stats.cc.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "apis/docker_security.h"
#include "runtimes/docker/engine_client.h"
#include "runtimes/driver.h"

namespace mentat {

struct DockerDriverOptions {
  std::string socket = docker::kDefaultSocket;
  std::string node_name = "local";
  // Host address published ports bind to; "" = all interfaces (Docker's default).
  std::string publish_ip;
  // Where AppArmor's state is read ("Y" when enabled); a test may point it elsewhere.
  std::string apparmor_enabled_path = "/sys/module/apparmor/parameters/enabled";
  // The agent's own data directory: no container under a security profile mounts it (or a
  // directory holding it). "" = not checked.
  std::string data_dir;
};

// The Docker HostConfig security fields for `sec`: User is returned apart (it is in Config).
// `apparmor` says whether AppArmor is enabled on the host: only then is apparmor= given.
Json DockerHostSecurity(const DockerSecurity& sec, bool apparmor);
// Mentat's strict seccomp profile (runtimes/docker/seccomp_strict.json), as shipped.
const char* StrictSeccompJson();

class DockerDriver : public Driver {
 public:
  static Result<std::unique_ptr<DockerDriver>> Create(DockerDriverOptions options = {});
  ~DockerDriver() override;

  std::string Name() const override { return "docker"; }
  Result<TaskHandle> Start(const TaskConfig& config) override;
  Status Recover(const TaskHandle& handle) override;
  Result<std::optional<ExitResult>> Wait(const std::string& id, std::chrono::milliseconds timeout) override;
  Status Stop(const std::string& id, std::chrono::milliseconds grace, int signal) override;
  Status Destroy(const std::string& id, bool force) override;
  Result<TaskStatus> Inspect(const std::string& id) override;
  Result<TaskStats> Stats(const std::string& id) override;
  Status Signal(const std::string& id, int signal) override;
  Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options, ExecCallbacks callbacks) override;
  Json Fingerprint() override;
  Json Capabilities() const override;
  Result<TaskLogs> Logs(const std::string& id) override;
  void SetExitHandler(ExitHandler handler) override { exit_handler_ = std::move(handler); }
  // Attaches the resolved security profile (ConfigSources): the container's rules come from it.
  Status ResolveConfig(TaskConfig& config, const ConfigSources& sources) override;
  // CleanupOrphans.
  Status CleanupAfterRecovery() override;

  // Mars Mode's orphan cleanup, called by the agent after recovery: stops and removes the
  // containers labelled mentat.node=<this node> that no known task (Start, Recover) owns.
  // Returns their names.
  Result<std::vector<std::string>> CleanupOrphans();

  docker::EngineClient& engine() { return *engine_; }

 private:
  struct Task {
    std::string id;
    std::string container;  // container id
    std::string name;       // container name
    std::string task_dir;
    LogLimits log_limits;   // the log pump rotates the task's logs by these
    bool adopted = false;   // an existing container, not made by Mentat
    bool tty = false;
    int pid = 0;
    std::string started_at;
    bool starting = false;    // registered, not yet started and inspected: CheckExited waits
    bool unverified = false;  // recovered while dockerd did not answer: looked at again
    bool exited = false;      // its exit is being (or has been) recorded: claimed once
    bool unregistered = false;  // a failed Start/Adopt took it back: its exit is never reported
    bool exit_known = false;  // `exit` is set
    ExitResult exit;
    std::atomic<bool> stop_logs{false};
    bool pump_ready = false;  // log_pump is assigned (or there is none): under mu_
    std::thread log_pump;
    std::mutex join_mu;  // one joiner at a time (exit reporting, Destroy, the destructor)
    void JoinPump() {
      std::lock_guard<std::mutex> lock(join_mu);
      if (log_pump.joinable()) log_pump.join();
    }
  };
  explicit DockerDriver(DockerDriverOptions options);
  std::shared_ptr<Task> Find(const std::string& id);
  Result<TaskHandle> Adopt(const TaskConfig& config, const std::string& container, const Json& profile);
  // Starts the thread that follows the container's logs into the task's files (log_pump.h).
  void StartLogPump(const std::shared_ptr<Task>& t);
  // From inspect: records the exit of a container that no longer runs (once) and reports it.
  void CheckExited(const std::shared_ptr<Task>& t);
  void OnEvent(const Json& event);
  void OnReconnect();
  // dockerd stopped answering: what it ran is unknown (without live-restore it is gone).
  void OnLost(const std::string& error);
  // Records `r` as the task's exit (once) and reports it; `r` empty: read it from inspect.
  void RecordExit(const std::shared_ptr<Task>& t, const ExitResult& r);
  // The reporter thread: joins the pump, sets the exit, calls the exit handler.
  void ReportLoop();
  void Report(const std::shared_ptr<Task>& t, ExitResult r);
  // Checks the unverified tasks again with backoff.
  void VerifyLoop();
  // A task a failed Start/Adopt had registered: erased (only if still the registered one), its
  // exit never reported, its container removed when Mentat made it.
  void Unregister(const std::shared_ptr<Task>& t, bool remove_container);
  TaskHandle HandleOf(const Task& t) const;

  DockerDriverOptions opts_;
  std::unique_ptr<docker::EngineClient> engine_;
  ExitHandler exit_handler_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Task>> tasks_;  // by task id
  std::deque<std::pair<std::shared_ptr<Task>, ExitResult>> reports_;  // under mu_
  bool reporter_stop_ = false;                                       // under mu_
  std::thread reporter_;
  std::thread verifier_;
  std::unique_ptr<docker::EventWatcher> events_;  // last: its thread uses the above
};

}  // namespace mentat
