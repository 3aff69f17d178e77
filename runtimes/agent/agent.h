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
#include "apis/server/http_server.h"
#include "controllers/workqueue.h"
#include "runtimes/agent/artifacts.h"
#include "runtimes/agent/exec_sessions.h"
#include "runtimes/agent/health.h"
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
  struct LocalTask {
    std::string driver;
    TaskHandle handle;
    std::string alloc_uid;
    std::string spec_hash;
    // The artifact its rootfs names ("sha256:...", "" for none); nullopt when recovered from a
    // handle written before agents recorded it (then its allocation's spec says).
    std::optional<std::string> artifact;
    int64_t generation = 1;
    int port = 0;
    Json checks_spec = Json::object();  // {port, checks} of the spec: persisted for recovery
    LogLimits logs;
    int64_t pids_limit = 0;         // spec resources.pids; 0: none
    uint64_t pids_limit_hits = 0;   // forks its pids limit refused, as last read
    std::vector<CheckState> checks;     // Ready needs every one passing
    std::string restart_policy = "always";
    bool running = false;
    bool ready = false;
    int pid = 0;
    int restarts = 0;
    std::string started_at;
    std::optional<ExitResult> last_exit;
    std::string message;
    std::chrono::steady_clock::time_point started_mono;
    std::chrono::steady_clock::time_point restart_at;  // when a restart is due
    bool restart_pending = false;
    int backoff_exp = 0;
    bool adopted_event_due = false;  // recovered from its handle: say so once its Allocation is known
  };

  explicit Agent(AgentOptions opts) : opts_(std::move(opts)) {}
  void SyncLoop();
  void WorkLoop();
  void ProbeLoop();
  // Collects the artifact trees no task uses, every limits.gc_interval.
  void ArtifactGcLoop();
  // The artifacts that the tasks of this node use or will use (ArtifactsInUse of artifacts.h).
  std::optional<std::set<std::string>> ArtifactsInUse();
  // Submits the checks that are due; their results come back through OnCheck. Returns when
  // the next one is due (at most 200 ms away).
  std::chrono::steady_clock::time_point RunDueChecks();
  void OnCheck(const std::string& key, const std::string& alloc_uid, size_t index, const CheckResult& r);
  // (Re)arms a task's checks from checks_spec when it starts or is recovered: all failing.
  static void ResetChecks(LocalTask& t);
  // Queues an Event about the allocation behind `key` (sent by FlushEvents, off the lock).
  void EmitLocked(const std::string& key, const char* type, const std::string& reason,
                  const std::string& message);
  void FlushEvents();
  // For tasks whose logs the workload writes itself (no relay): appends to each log's time
  // index (log_index.h) and rotates; from the probe loop, once a second.
  void SampleLogs();
  // Reads the pids-limit hits of tasks that have a limit: status pidsLimitHits and an event.
  void SampleLimits();
  // GET /v1/allocations/NAME/logs (log_endpoint.h): both streams merged in order, or one.
  void ServeLogs(const HttpRequest& req, HttpResponse& res);
  // POST /v1/allocations/NAME/exec: starts a command in the running task (ExecSessions), then
  // GET /v1/exec/ID/output, POST /v1/exec/ID/input and POST /v1/exec/ID/resize.
  void ServeExecCreate(const HttpRequest& req, HttpResponse& res);
  void ServeExecSession(const HttpRequest& req, HttpResponse& res);
  // The "ns/name" key of the allocation a request names (?namespace=, the :name segment), each
  // a DNS label: they become paths under the data dir.
  Result<std::string> RequestedKey(const HttpRequest& req);
  Status Reconcile(const std::string& key);
  // The key the server calls this agent with (server_key.h), from the server.
  Status FetchServerKey();
  Status RegisterNode();
  // PUT of this agent's Node, less the label changes the server refuses a node token.
  Status PutNode(Json node, const Json& before);
  // Recovers the persisted tasks, then kills what interrupted starts left behind (orphans.h).
  void RecoverTasks();
  // Puts the stored SecurityProfile spec a docker task names at spec.security.resolved (for
  // the driver); kUnavailable when the server cannot be asked.
  Status AttachSecurityProfile(Json& spec);
  void RecoverHandles();
  // The `starting` marker of orphans.h, written before a driver starts the task.
  Status WriteMarker(const std::string& key, const std::string& task_id);
  void OnExit(const std::string& task_id, const ExitResult& exit);
  Status WriteHandle(const std::string& key, const LocalTask& t);
  void RemoveTaskDir(const std::string& key);
  Json BuildStatus(const std::string& key);
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<ExecSessions> exec_sessions_;  // after http_: it posts to the server's loop
  ServerKey server_key_;  // the only credential the endpoints accept
  std::string address_;  // advertised in the Node's status as agentAddress
  std::mutex events_mu_;
  std::vector<Json> events_;  // MakeEvent objects waiting to be sent
  std::string TaskDir(const std::string& key) const;
  Driver* DriverFor(const std::string& name);

  AgentOptions opts_;
  std::unique_ptr<CheckRunner> checks_;
  std::shared_ptr<ApiClient> client_;
  std::unique_ptr<ArtifactCache> artifacts_;  // app rootfs trees, under data_dir/artifacts
  std::map<std::string, DriverPtr> drivers_;
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
  Json node_conditions_ = Json::array();      // as last written, for lastTransitionTime
  std::atomic<bool> node_registered_{false};  // the Node object is known to exist
};

// Exposed for tests: task id <-> allocation key.
std::string TaskIdForKey(const std::string& key);

}  // namespace mentat
