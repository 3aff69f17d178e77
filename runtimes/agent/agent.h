// The node agent. It watches the Allocations placed on its node, runs each through its driver,
// persists every task handle under its data dir, probes readiness, applies the restart policy,
// and writes Allocation status back. Stopping or crashing the agent leaves workloads running:
// a new agent recovers them from their handles instead of restarting them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "apis/client.h"
#include "apis/service.h"
#include "controllers/workqueue.h"
#include "runtimes/agent/artifacts.h"
#include "runtimes/agent/endpoints.h"
#include "runtimes/agent/event_queue.h"
#include "runtimes/agent/handle_store.h"
#include "runtimes/agent/health.h"
#include "runtimes/agent/local_task.h"
#include "runtimes/agent/node_registration.h"
#include "runtimes/agent/server_key.h"
#include "runtimes/logs/log_rotate.h"
#include "runtimes/driver.h"

namespace mentat {

struct AgentOptions {
  std::string server;     // http://host:port of mentat-server
  std::string token;
  std::string ca_file;    // verifies an https:// server; "" = the system's CAs
  std::string node_name;  // defaults to the host name
  // Labels of this node (e.g. internal-only for the exec-internal profile), merged into the
  // Node's labels when the agent starts.
  std::map<std::string, std::string> labels;
  std::string data_dir;   // handles and logs live under it
  // The agent's own endpoint (allocation logs, exec): HOST:PORT, port 0 for any. Plain HTTP
  // unless tls_cert/tls_key are set. Only the server calls it, with this node's agent key
  // (server_key.h); users reach it through the server's API.
  std::string listen = "127.0.0.1:0";
  // The URL the server reaches it at; default from the bound address. The server takes its
  // scheme and port, and calls the address the node's status writes come from.
  std::string advertise;
  std::string tls_cert, tls_key;
  std::chrono::milliseconds stop_grace{3000};
  std::chrono::milliseconds heartbeat{5000};
  // Log rotation for tasks whose spec has no `logs` (log_rotate.h).
  LogLimits logs;
  // The sandbox-init binary; empty: found next to the agent (FindSandboxInit).
  std::string sandbox_init;
  // The Docker driver: dockerd's socket, and the host address published ports bind to ("" =
  // all interfaces, Docker's default).
  std::string docker_socket = "/var/run/docker.sock";
  std::string docker_publish_ip;
  // hull's state directory for the hull driver's containers; empty: <data_dir>/hull/state.
  std::string hull_state_dir;
  // Bounds on the unpacked app rootfs trees under <data_dir>/artifacts, and their collection.
  ArtifactLimits artifacts;
};

// The agent wires its parts together and owns the state they share (under mu_). Its member
// functions are defined by concern:
//   agent.cc           lifecycle (Create, Start, Stop), the probe and artifact GC loops, events
//   sync_loop.cc       list/watch of this node's Allocations, the work loop, Reconcile
//   task_runner.cc     start, restart policy, exit and recovery of tasks through their drivers
//   task_checks.cc     health checks: running those due, recording their results
//   usage_sampler.cc   log indexing and rotation, pids-limit hits, artifacts in use
// The parts with narrow interfaces are classes of their own: HandleStore (handle_store.h),
// NodeRegistration (node_registration.h), EventQueue (event_queue.h) and AgentEndpoints
// (endpoints.h).
class Agent {
 public:
  static Result<std::unique_ptr<Agent>> Create(AgentOptions opts);
  ~Agent();

  // Recovers persisted tasks, registers the node and starts the sync, work and probe loops.
  Status Start();
  // Stops the loops. Workloads keep running.
  void Stop();

  const std::string& node_name() const { return opts_.node_name; }

 private:
  explicit Agent(AgentOptions opts) : opts_(std::move(opts)), handles_(opts_.data_dir) {}

  // agent.cc
  void ProbeLoop();
  // Collects the artifact trees no task uses, every limits.gc_interval.
  void ArtifactGcLoop();
  // Writes the Node's heartbeat: its address, drivers, capacity and artifact usage.
  Status RegisterNode();
  // Queues an Event about the allocation behind `key` (sent by the probe loop, off the lock).
  // Caller holds mu_.
  void EmitLocked(const std::string& key, const char* type, const std::string& reason,
                  const std::string& message);
  Driver* DriverFor(const std::string& name);

  // sync_loop.cc
  // Fetches the server's key and registers the node: before the first list and before each
  // watch resumed after a disconnect.
  Status Connect();
  void SyncLoop();
  void WorkLoop();
  // The key the server calls this agent with (server_key.h), from the server.
  Status FetchServerKey();
  Status Reconcile(const std::string& key);
  // Stops and forgets the task of `key` if it should not run here, or runs an outdated spec
  // or a replaced allocation. Called with `lock` held; returns with it held unless it fails.
  Status StopOutdated(const std::string& key, bool want, const std::string& uid,
                      const std::string& hash, std::unique_lock<std::mutex>& lock);
  // Writes the task's status to its Allocation when it changed. Called with `lock` held, which
  // it releases for the write.
  Status ReportStatus(const std::string& key, const Json& alloc, std::unique_lock<std::mutex>& lock);

  // task_runner.cc
  // Recovers the persisted tasks, then kills what interrupted starts left behind (orphans.h).
  void RecoverTasks();
  void RecoverHandles();
  // The task of `key`, made from the allocation's spec if there is none yet. Caller holds mu_.
  LocalTask& TrackTask(const std::string& key, const Json& alloc, const ServiceSpec& spec,
                       const std::string& hash);
  // Applies the restart policy to a task that exited: schedules its restart, with backoff.
  void ScheduleRestart(const std::string& key, LocalTask& t);
  // Starts the task of `key` through its driver, persisting its handle. Called with `lock`
  // held, released while the driver works; returns with it held unless it fails. The task may
  // be gone by then (stopped meanwhile).
  Status StartTask(const std::string& key, const Json& alloc, const ServiceSpec& spec,
                   std::unique_lock<std::mutex>& lock);
  // Records what a start gave the task of `key`. Caller holds mu_.
  Status RecordStart(const std::string& key, LocalTask& t, Driver& driver,
                     const Result<TaskHandle>& handle, bool was_restart);
  // Puts the stored SecurityProfile spec a docker task names at spec.security.resolved (for
  // the driver); kUnavailable when the server cannot be asked.
  Status AttachSecurityProfile(Json& spec);
  void OnExit(const std::string& task_id, const ExitResult& exit);

  // task_checks.cc
  // Submits the checks that are due; their results come back through OnCheck. Returns when
  // the next one is due (at most 200 ms away).
  std::chrono::steady_clock::time_point RunDueChecks();
  void OnCheck(const std::string& key, const std::string& alloc_uid, size_t index, const CheckResult& r);

  // usage_sampler.cc
  // For tasks whose logs the workload writes itself (no relay): appends to each log's time
  // index (log_index.h) and rotates; from the probe loop, once a second.
  void SampleLogs();
  // Reads the pids-limit hits of tasks that have a limit: status pidsLimitHits and an event.
  void SampleLimits();
  // The artifacts that the tasks of this node use or will use (ArtifactsInUse of artifacts.h).
  std::optional<std::set<std::string>> ArtifactsInUse();

  AgentOptions opts_;
  HandleStore handles_;  // task handles and markers under data_dir/tasks
  std::shared_ptr<ApiClient> client_;
  std::unique_ptr<NodeRegistration> node_;
  std::unique_ptr<ArtifactCache> artifacts_;  // app rootfs trees, under data_dir/artifacts
  std::map<std::string, DriverPtr> drivers_;
  ServerKey server_key_;  // the only credential the endpoints accept
  std::unique_ptr<AgentEndpoints> endpoints_;
  std::unique_ptr<CheckRunner> checks_;
  EventQueue events_;
  WorkQueue queue_;
  std::atomic<bool> stop_{false};
  std::mutex stop_mu_;  // with stop_cv_: wakes loops that wait out an interval when Stop comes
  std::condition_variable stop_cv_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::map<std::string, Json> desired_;       // key "ns/name" -> Allocation
  std::map<std::string, LocalTask> tasks_;    // key -> what runs here
  std::map<std::string, Json> last_status_;   // key -> status last written
  bool synced_ = false;                       // desired_ reflects a full list
};

}  // namespace mentat
