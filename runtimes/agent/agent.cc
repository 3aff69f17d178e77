#include "runtimes/agent/agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "apis/event.h"
#include "apis/service.h"
#include "runtimes/agent/fingerprint.h"
#include "runtimes/agent/log_endpoint.h"
#include "runtimes/logs/log_index.h"
#include "runtimes/logs/log_writer.h"
#include "runtimes/agent/orphans.h"
#include "apis/security_profile.h"
#include "runtimes/registry.h"

namespace mentat {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A change detector for a task's spec (not a security hash).
std::string SpecHash(const Json& task_spec) { return ContentHash(task_spec); }

std::string KeyOfAlloc(const Json& alloc) { return NamespaceOf(alloc) + "/" + NameOf(alloc); }

// The spec's (or a persisted handle's) `logs: {max_file_mb, max_files}` over the agent's defaults.
LogLimits LogLimitsFor(const Json& logs, LogLimits limits) {
  if (!logs.is_object()) return limits;
  if (auto mb = logs.find("max_file_mb"); mb != logs.end() && mb->is_number_integer() && *mb > 0) {
    limits.max_file_bytes = mb->get<int64_t>() << 20;
  }
  if (auto n = logs.find("max_files"); n != logs.end() && n->is_number_integer() && *n >= 0) {
    limits.max_files = n->get<int>();
  }
  return limits;
}

void SendApiError(HttpResponse& res, const Error& e) {
  res.status = e.HttpStatus();
  res.content_type = "application/json";
  res.body = e.ToJson().dump() + "\n";
}

// The owner of every exec session on this agent: the server, which binds each one to the
// user that made it (apis/server/exec_session_table.h).
constexpr const char* kSessionOwner = "mentat-server";

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "node";
  std::string s = buf;
  for (auto& c : s) c = static_cast<char>(tolower(c));
  auto dot = s.find('.');
  if (dot != std::string::npos) s = s.substr(0, dot);
  return IsDnsLabel(s) ? s : "node";
}

}  // namespace

std::string TaskIdForKey(const std::string& key) {
  std::string id = key;
  std::replace(id.begin(), id.end(), '/', '.');
  return id;
}

Result<std::unique_ptr<Agent>> Agent::Create(AgentOptions opts) {
  if (opts.node_name.empty()) opts.node_name = HostName();
  if (!IsDnsLabel(opts.node_name)) {
    return InvalidArgument("node name \"" + opts.node_name + "\" must be a DNS label");
  }
  if (opts.data_dir.empty()) return InvalidArgument("agent data dir is required");
  std::error_code ec;
  fs::create_directories(opts.data_dir + "/tasks", ec);
  if (ec) return Internal("creating " + opts.data_dir + "/tasks: " + ec.message());
  std::unique_ptr<Agent> agent(new Agent(std::move(opts)));
  ClientOptions co;
  co.token = agent->opts_.token;
  co.ca_file = agent->opts_.ca_file;
  MT_ASSIGN_OR_RETURN(agent->client_, ApiClient::Create(agent->opts_.server, co));
  ArtifactCacheOptions cache_opts;
  cache_opts.dir = agent->opts_.data_dir + "/artifacts";
  cache_opts.source = [client = agent->client_](const std::string& digest, const auto& on_data) {
    return client->GetArtifact(digest, on_data);
  };
  cache_opts.limits = agent->opts_.artifacts;
  cache_opts.in_use = [a = agent.get()] { return a->ArtifactsInUse(); };
  MT_ASSIGN_OR_RETURN(agent->artifacts_, ArtifactCache::Create(std::move(cache_opts)));
  // Every registered driver (registry.h), made for this node.
  DriverContext context;
  context.node_name = agent->opts_.node_name;
  context.data_dir = agent->opts_.data_dir;
  context.core_mhz = HostCapacity(agent->opts_.data_dir).value("cpu_mhz", int64_t{0});
  context.sandbox_init = agent->opts_.sandbox_init;
  context.docker_socket = agent->opts_.docker_socket;
  context.docker_publish_ip = agent->opts_.docker_publish_ip;
  context.hull_state_dir = agent->opts_.hull_state_dir;
  MT_ASSIGN_OR_RETURN(auto drivers, MakeRegisteredDrivers(context));
  for (auto& d : drivers) agent->drivers_[d->Name()] = std::move(d);
  for (auto& [name, driver] : agent->drivers_) {
    driver->SetExitHandler([a = agent.get()](const std::string& id, const ExitResult& exit) {
      a->OnExit(id, exit);
    });
  }
  return agent;
}

Agent::~Agent() { Stop(); }

std::string Agent::TaskDir(const std::string& key) const {
  return opts_.data_dir + "/tasks/" + TaskIdForKey(key);
}

Driver* Agent::DriverFor(const std::string& name) {
  auto it = drivers_.find(name);
  return it == drivers_.end() ? nullptr : it->second.get();
}

Status Agent::Start() {
  auto colon = opts_.listen.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("--listen must be HOST:PORT, got " + opts_.listen);
  HttpServerOptions ho;
  ho.host = opts_.listen.substr(0, colon);
  ho.port = std::atoi(opts_.listen.c_str() + colon + 1);
  ho.workers = 4;
  ho.tls_cert = opts_.tls_cert;
  ho.tls_key = opts_.tls_key;
  http_ = std::make_unique<HttpServer>(ho);
  // Every endpoint admits the server's key alone (server_key.h).
  auto admitted = [this](void (Agent::*serve)(const HttpRequest&, HttpResponse&)) {
    return [this, serve](const HttpRequest& req, HttpResponse& res) {
      if (auto st = server_key_.Admit(req, res); !st) return SendApiError(res, st.error());
      (this->*serve)(req, res);
    };
  };
  http_->Route("GET", "/v1/allocations/:name/logs", admitted(&Agent::ServeLogs));
  http_->Route("POST", "/v1/allocations/:name/exec", admitted(&Agent::ServeExecCreate));
  http_->Route("GET", "/v1/exec/:id/output", admitted(&Agent::ServeExecSession));
  http_->Route("POST", "/v1/exec/:id/input", admitted(&Agent::ServeExecSession));
  http_->Route("POST", "/v1/exec/:id/resize", admitted(&Agent::ServeExecSession));
  exec_sessions_ = std::make_unique<ExecSessions>(http_.get(), ExecSessionLimits{});
  checks_ = std::make_unique<CheckRunner>();
  MT_ASSIGN_OR_RETURN(int port, http_->Start());
  address_ = !opts_.advertise.empty()
                 ? opts_.advertise
                 : std::string(opts_.tls_cert.empty() ? "http" : "https") + "://" + ho.host + ":" +
                       std::to_string(port);
  RecoverTasks();
  // Mars Mode: what no recovered task owns goes (containers labelled for this node whose
  // allocation is gone or that died while the agent was down, empty cgroups of killed starts).
  for (auto& [name, d] : drivers_) {
    if (auto st = d->CleanupAfterRecovery(); !st) {
      spdlog::warn("agent: {} cleanup after recovery: {}", name, st.error().message());
    }
  }
  threads_.emplace_back([this] { SyncLoop(); });
  for (int i = 0; i < 4; ++i) threads_.emplace_back([this] { WorkLoop(); });
  threads_.emplace_back([this] { ProbeLoop(); });
  threads_.emplace_back([this] { ArtifactGcLoop(); });
  return {};
}

void Agent::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stop_.exchange(true)) return;
  }
  stop_cv_.notify_all();
  if (client_) client_->CancelWatches();
  if (http_) http_->Stop();
  queue_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  exec_sessions_.reset();  // exec'd commands end with the agent; workloads do not
  checks_.reset();
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

void Agent::RecoverTasks() {
  RecoverHandles();
  // Starts a crash interrupted: kill what they left running that no handle records.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(opts_.data_dir + "/tasks", ec)) {
    std::ifstream marker(entry.path() / kStartingMarker);
    std::string task_id;
    if (!marker || !std::getline(marker, task_id) || task_id.empty()) continue;
    int keep = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [key, t] : tasks_) {
        if (t.handle.id == task_id && t.running) keep = t.pid;
      }
    }
    KillUnrecordedProcesses(task_id, keep);
    fs::remove(entry.path() / kStartingMarker, ec);
  }
}

Status Agent::WriteMarker(const std::string& key, const std::string& task_id) {
  std::string dir = TaskDir(key);
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ofstream f(dir + "/" + kStartingMarker, std::ios::trunc);
  f << task_id << "\n";
  f.flush();
  if (!f) return Internal("writing " + dir + "/" + kStartingMarker);
  return {};
}

void Agent::RecoverHandles() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(opts_.data_dir + "/tasks", ec)) {
    std::ifstream f(entry.path() / "handle.json");
    if (!f) continue;
    Json j = Json::parse(f, nullptr, false);
    if (j.is_discarded()) {
      spdlog::warn("agent: ignoring unreadable handle {}", (entry.path() / "handle.json").string());
      continue;
    }
    auto handle = TaskHandle::FromJson(j.value("handle", Json()));
    if (!handle) continue;
    std::string key = j.value("key", "");
    if (key.empty()) continue;
    LocalTask t;
    t.driver = handle->driver;
    t.handle = *handle;
    t.alloc_uid = j.value("allocUid", "");
    t.spec_hash = j.value("specHash", "");
    if (j.contains("artifact") && j["artifact"].is_string()) t.artifact = j["artifact"];
    t.port = j.value("port", 0);
    t.checks_spec = j.value("checks", Json{{"port", t.port}});
    t.logs = LogLimitsFor(j.value("logs", Json()), opts_.logs);
    t.restart_policy = j.value("restart", "always");
    t.restarts = j.value("restarts", 0);
    t.pid = handle->state.value("pid", 0);
    t.started_at = handle->state.value("startedAt", "");
    t.started_mono = std::chrono::steady_clock::now();
    Driver* driver = DriverFor(t.driver);
    auto st = driver ? driver->Recover(*handle)
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

// Labels that place workloads (a profile's allowed_nodes, e.g. internal-only) are the admins' to
// set: the server refuses them from a node token, naming each. The node is written without
// those changes then (each kept as `before` has it), so that a --label the server refuses does
// not keep the node from registering.
Status Agent::PutNode(Json node, const Json& before) {
  auto written = client_->Put("nodes", opts_.node_name, node.dump());
  if (written) return {};
  if (written.error().code() != Code::kForbidden) return std::unexpected(written.error());
  static const std::string prefix = "metadata.labels.";
  bool dropped = false;
  for (const auto& d : written.error().details()) {
    if (d.field.rfind(prefix, 0) != 0) continue;
    std::string key = d.field.substr(prefix.size());
    spdlog::warn("agent: label {} of node {} not set: {}", key, opts_.node_name, d.message);
    Json& labels = node["metadata"]["labels"];
    if (before.contains(key)) {
      labels[key] = before[key];
    } else {
      labels.erase(key);
    }
    dropped = true;
  }
  if (!dropped) return std::unexpected(written.error());
  auto again = client_->Put("nodes", opts_.node_name, node.dump());
  if (!again) return std::unexpected(again.error());
  return {};
}

Status Agent::RegisterNode() {
  // The agent creates its own Node on first contact (as a kubelet does), or again if it was
  // deleted; every heartbeat after that is one status write.
  if (!node_registered_) {
    auto existing = client_->Get("nodes", opts_.node_name);
    if (!existing) {
      if (existing.error().code() != Code::kNotFound) return std::unexpected(existing.error());
      Json node = {{"apiVersion", std::string(kApiVersion)},
                   {"kind", "Node"},
                   {"metadata", {{"name", opts_.node_name}, {"labels", opts_.labels}}},
                   {"spec", Json::object()}};
      MT_RETURN_IF_ERROR(PutNode(std::move(node), Json::object()));
    } else {
      // Labels set by others stay; ours are added or corrected.
      Json labels = (*existing)["metadata"].value("labels", Json::object());
      Json merged = labels;
      for (const auto& [k, v] : opts_.labels) merged[k] = v;
      if (merged != labels) {
        Json node = *existing;
        node["metadata"]["labels"] = merged;
        node.erase("status");
        MT_RETURN_IF_ERROR(PutNode(std::move(node), labels));
      }
    }
    node_registered_ = true;
  }
  Json drivers = Json::object();
  for (auto& [name, d] : drivers_) drivers[name] = d->Fingerprint();
  Json node = {{"kind", "Node"},
               {"metadata", {{"name", opts_.node_name}}},
               {"status",
                {{"ready", true},
                 {"conditions",
                  Json::array({MakeCondition("Ready", true, "AgentHeartbeat",
                                             "the agent is posting heartbeats", 0,
                                             node_conditions_)})},
                 {"lastHeartbeat", NowRfc3339()},
                 {"agentAddress", address_},
                 {"drivers", drivers},
                 {"capacity", HostCapacity(opts_.data_dir)},
                 {"artifacts", artifacts_->Usage().ToJson()}}}};
  auto written = client_->PutStatus("nodes", opts_.node_name, node);
  if (!written) {
    if (written.error().code() == Code::kNotFound) node_registered_ = false;  // recreate next time
    return std::unexpected(written.error());
  }
  node_conditions_ = node["status"]["conditions"];
  return {};
}

Status Agent::FetchServerKey() {
  MT_ASSIGN_OR_RETURN(std::string key, ServerKey::Fetch(*client_, opts_.node_name));
  if (!server_key_.Known()) spdlog::info("agent: node {} has its agent key", opts_.node_name);
  server_key_.Set(std::move(key));
  return {};
}

void Agent::SyncLoop() {
  auto backoff = 100ms;
  while (!stop_) {
    // Each (re)connection fetches the key again: a server whose secret was replaced has
    // ended the watch, and hands out the new key.
    if (auto st = FetchServerKey(); !st) {
      spdlog::warn("agent: fetching node {}'s agent key: {}", opts_.node_name,
                   st.error().message());
      std::this_thread::sleep_for(backoff);  // retry pacing, not a state wait
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
      continue;
    }
    if (auto st = RegisterNode(); !st) {
      spdlog::warn("agent: registering node {}: {}", opts_.node_name, st.error().message());
      std::this_thread::sleep_for(backoff);  // retry pacing, not a state wait
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
      continue;
    }
    RequestOptions ro;
    ro.label_selector = std::string(kLabelNode) + "=" + opts_.node_name;
    auto list = client_->List("allocations", ro);
    if (!list) {
      spdlog::warn("agent: listing allocations: {}", list.error().message());
      std::this_thread::sleep_for(backoff);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
      continue;
    }
    backoff = 100ms;
    int64_t rv = std::stoll(list->value("resourceVersion", std::string("0")));
    std::set<std::string> keys;
    {
      std::lock_guard<std::mutex> lock(mu_);
      desired_.clear();
      for (const auto& item : (*list)["items"]) desired_[KeyOfAlloc(item)] = item;
      synced_ = true;
      for (const auto& [k, v] : desired_) keys.insert(k);
      for (const auto& [k, v] : tasks_) keys.insert(k);
    }
    for (const auto& k : keys) queue_.Add(k);
    auto st = client_->Watch(
        "allocations", rv, ro,
        [this](const Json& ev) {
          std::string type = ev.value("type", "");
          if (type == "BOOKMARK") return true;
          if (type == "ERROR" || !ev.contains("object") || !ev["object"].is_object() ||
              !ev["object"].contains("metadata")) {
            // The server ended the stream (shutdown, or this watcher fell behind): re-list.
            spdlog::info("agent: watch closed by the server: {}",
                         ev.value("object", Json::object()).value("message", std::string("?")));
            return false;
          }
          const Json& obj = ev["object"];
          std::string key = KeyOfAlloc(obj);
          {
            std::lock_guard<std::mutex> lock(mu_);
            if (type == "DELETED") {
              desired_.erase(key);
            } else {
              desired_[key] = obj;
            }
          }
          queue_.Add(key);
          return !stop_;
        },
        &stop_);
    if (stop_) break;
    if (!st) spdlog::info("agent: watch ended ({}); re-listing", st.error().message());
  }
}

void Agent::WorkLoop() {
  while (auto key = queue_.Get()) {
    auto st = Reconcile(*key);
    if (!st) {
      spdlog::warn("agent: reconcile {}: {}", *key, st.error().message());
      queue_.Done(*key);
      queue_.AddRateLimited(*key);
      continue;
    }
    queue_.Forget(*key);
    queue_.Done(*key);
  }
}

void Agent::OnExit(const std::string& task_id, const ExitResult& exit) {
  std::string key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, t] : tasks_) {
      if (t.handle.id == task_id && t.running) {
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
  }
  if (!key.empty()) {
    spdlog::info("agent: task {} {}", key, exit.message);
    queue_.Add(key);
  }
}

Status Agent::WriteHandle(const std::string& key, const LocalTask& t) {
  std::string dir = TaskDir(key);
  std::error_code ec;
  fs::create_directories(dir, ec);
  Json j = {{"key", key},          {"handle", t.handle.ToJson()}, {"allocUid", t.alloc_uid},
            {"specHash", t.spec_hash}, {"port", t.port},          {"restart", t.restart_policy},
            {"restarts", t.restarts}, {"checks", t.checks_spec},
            {"artifact", t.artifact.value_or("")},
            {"logs", {{"max_file_mb", t.logs.max_file_bytes >> 20}, {"max_files", t.logs.max_files}}}};
  // Write-then-rename so a crash never leaves a torn handle.
  std::string tmp = dir + "/handle.json.tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump();
    f.flush();
    if (!f) return Internal("writing " + tmp);
  }
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(tmp, dir + "/handle.json", ec);
  if (ec) return Internal("renaming handle: " + ec.message());
  return {};
}

void Agent::RemoveTaskDir(const std::string& key) {
  std::error_code ec;
  fs::remove_all(TaskDir(key), ec);
}

Json Agent::BuildStatus(const std::string& key) {
  // Caller holds mu_.
  const LocalTask& t = tasks_.at(key);
  Json s = {{"node", opts_.node_name}, {"restarts", t.restarts}, {"ready", t.ready}};
  if (t.running) {
    s["phase"] = "Running";
    s["pid"] = t.pid;
    s["startedAt"] = t.started_at;
    s["message"] = "running";
    for (const auto& c : t.checks) {
      if (c.passing) continue;
      bool implicit = t.checks.size() == 1 && !t.checks_spec.contains("checks");
      s["message"] = implicit ? "running, waiting for port " + std::to_string(c.spec.port)
                     : c.last_error.empty()
                         ? "running, waiting for check " + c.spec.Describe()
                         : "running, check " + c.spec.Describe() + " failing: " + c.last_error;
      break;
    }
  } else if (t.restart_pending) {
    s["phase"] = "Restarting";
    s["message"] = t.message;
  } else if (t.last_exit) {
    bool ok = t.last_exit->exit_code && *t.last_exit->exit_code == 0;
    s["phase"] = ok ? "Complete" : "Failed";
    s["message"] = t.message.empty() ? t.last_exit->message : t.message;
  } else {
    s["phase"] = "Pending";
    s["message"] = t.message;
  }
  std::string reason = t.running ? (t.ready ? "Running" : "ChecksNotPassing")
                      : t.restart_pending ? "Restarting"
                      : t.last_exit       ? "Exited"
                                          : "Pending";
  const Json& prev = last_status_.count(key) ? last_status_.at(key).value("conditions", Json::array())
                                             : Json::array();
  s["conditions"] = Json::array(
      {MakeCondition("Ready", t.ready, reason, s.value("message", ""), t.generation, prev)});
  if (t.last_exit) {
    if (t.last_exit->exit_code) s["exitCode"] = *t.last_exit->exit_code;
    if (t.last_exit->signal) s["signal"] = *t.last_exit->signal;
    if (t.last_exit->oom_killed) s["oomKilled"] = true;
  }
  if (t.pids_limit_hits > 0) s["pidsLimitHits"] = t.pids_limit_hits;
  return s;
}

Status Agent::Reconcile(const std::string& key) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!synced_) return {};  // GC decisions need the full picture
  auto desired_it = desired_.find(key);
  const Json* alloc = desired_it == desired_.end() ? nullptr : &desired_it->second;
  bool want = alloc && alloc->contains("metadata") &&
              !(*alloc)["metadata"].contains("deletionTimestamp") &&
              alloc->value("spec", Json::object()).value("nodeName", "") == opts_.node_name;
  auto task_it = tasks_.find(key);

  std::string uid = want ? (*alloc)["metadata"].value("uid", "") : "";
  Json task_spec = alloc ? alloc->value("spec", Json::object()).value("task", Json::object()) : Json();
  std::string hash = alloc ? SpecHash(task_spec) : "";

  // Stop what should not run here, or runs an outdated spec or a replaced allocation.
  if (task_it != tasks_.end() &&
      (!want || task_it->second.alloc_uid != uid || task_it->second.spec_hash != hash)) {
    LocalTask t = task_it->second;
    lock.unlock();
    if (Driver* d = DriverFor(t.driver)) {
      if (t.running) {
        spdlog::info("agent: stopping {} (pid {})", key, t.pid);
        MT_RETURN_IF_ERROR(d->Stop(t.handle.id, opts_.stop_grace, SIGTERM));
      }
      MT_RETURN_IF_ERROR(d->Destroy(t.handle.id, /*force=*/true));
    }
    lock.lock();
    tasks_.erase(key);
    last_status_.erase(key);
    lock.unlock();
    RemoveTaskDir(key);
    if (!want) return {};
    lock.lock();
    task_it = tasks_.end();
  }
  if (!want) return {};

  auto spec = ServiceSpec::FromJson(task_spec);
  if (!spec) return std::unexpected(spec.error());
  if (task_it == tasks_.end()) {
    LocalTask t;
    t.driver = spec->driver;
    t.alloc_uid = uid;
    t.spec_hash = hash;
    t.artifact = ArtifactOf(task_spec);
    t.generation = alloc->at("metadata").value("generation", int64_t{1});
    t.port = spec->port;
    t.checks_spec = {{"port", spec->port}};
    if (task_spec.contains("checks")) t.checks_spec["checks"] = task_spec["checks"];
    t.logs = LogLimitsFor(task_spec.value("logs", Json()), opts_.logs);
    t.restart_policy = spec->restart;
    t.pids_limit = task_spec.value("resources", Json::object()).value("pids", int64_t{0});
    task_it = tasks_.emplace(key, std::move(t)).first;
  }
  LocalTask& t = task_it->second;
  if (t.adopted_event_due) {
    t.adopted_event_due = false;
    EmitLocked(key, kEventNormal, "Adopted",
               "the agent on node " + opts_.node_name + " restarted and adopted the running task " +
                   "(driver " + t.driver + ", pid " + std::to_string(t.pid) + ") without restarting it");
  }

  // Restart policy for a task that exited.
  if (!t.running && t.last_exit) {
    bool failed = !(t.last_exit->exit_code && *t.last_exit->exit_code == 0);
    bool restart = t.restart_policy == "always" || (t.restart_policy == "on-failure" && failed);
    if (!restart) {
      t.restart_pending = false;
    } else if (!t.restart_pending) {
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
  }

  bool start_now = !t.running && (!t.last_exit || (t.restart_pending &&
                                                   std::chrono::steady_clock::now() >= t.restart_at));
  if (start_now) {
    Driver* driver = DriverFor(t.driver);
    if (!driver) {
      t.message = "driver " + t.driver + " is not available on node " + opts_.node_name;
      t.last_exit = ExitResult{std::nullopt, std::nullopt, false, t.message};
      t.restart_policy = "never";
    } else {
      TaskConfig cfg;
      cfg.id = TaskIdForKey(key);
      cfg.identity = {NamespaceOf(*alloc), alloc->at("spec").value("service", ""), NameOf(*alloc),
                      alloc->at("spec").value("index", -1)};
      cfg.command = spec->command;
      cfg.args = spec->args;
      cfg.env = spec->env;
      cfg.cwd = spec->cwd;
      cfg.task_dir = TaskDir(key);
      cfg.spec = task_spec;
      cfg.log_limits = t.logs;
      cfg.env.push_back({kTaskIdEnv, cfg.id});
      bool was_restart = t.last_exit.has_value();
      t.artifact = ArtifactOf(task_spec);  // what this start uses, whatever a handle said
      lock.unlock();
      // A rootfs `mt apply` uploaded (sha256:...) is fetched and unpacked once per node; the
      // driver gets its local directory. If that fails (a limit, the node's budget), the task
      // fails to start, saying why. The lease holds the tree until here, where the task
      // (t.artifact) holds it for garbage collection.
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
      if (rootfs) MT_RETURN_IF_ERROR(WriteMarker(key, cfg.id));
      auto handle = rootfs ? driver->Start(cfg)
                           : Result<TaskHandle>(std::unexpected(rootfs.error()));
      lock.lock();
      auto again = tasks_.find(key);
      if (again == tasks_.end()) return {};
      LocalTask& lt = again->second;
      if (!handle) {
        lt.message = handle.error().message();
        lt.last_exit = ExitResult{std::nullopt, std::nullopt, false, lt.message};
        lt.restart_pending = false;
        spdlog::warn("agent: starting {}: {}", key, lt.message);
        EmitLocked(key, kEventWarning, "FailedStart", lt.message);
        // A bad spec will not fix itself; a restart policy still retries with backoff.
        if (lt.restart_policy != "never") queue_.AddRateLimited(key);
      } else {
        lt.handle = *handle;
        lt.running = true;
        lt.pids_limit_hits = 0;  // a new run, a new cgroup: its own count
        // A task may exit before this point; its exit handler then found nothing running.
        if (auto st = driver->Inspect(handle->id); st && st->exit) {
          lt.running = false;
          lt.last_exit = st->exit;
          // A memory hog can be killed before Start has even returned.
          if (st->exit->oom_killed) EmitLocked(key, kEventWarning, "OOMKilled", st->exit->message);
          queue_.Add(key);
        }
        ResetChecks(lt);
        lt.pid = handle->state.value("pid", 0);
        lt.started_at = handle->state.value("startedAt", "");
        lt.started_mono = std::chrono::steady_clock::now();
        lt.restart_pending = false;
        lt.message.clear();
        if (was_restart) lt.restarts++;
        MT_RETURN_IF_ERROR(WriteHandle(key, lt));
        std::filesystem::remove(TaskDir(key) + "/" + kStartingMarker);
        spdlog::info("agent: started {} (pid {})", key, lt.pid);
        if (was_restart) {
          EmitLocked(key, kEventWarning, "Restarted",
                     "restart " + std::to_string(lt.restarts) + " on node " + opts_.node_name +
                         ", pid " + std::to_string(lt.pid) + (lt.last_exit ? "; it had " + lt.last_exit->message : ""));
        } else {
          EmitLocked(key, kEventNormal, "Started",
                     "started on node " + opts_.node_name + ", pid " + std::to_string(lt.pid));
        }
      }
    }
  }

  // Report status when it changed.
  Json status = BuildStatus(key);
  auto last = last_status_.find(key);
  if (last != last_status_.end() && last->second == status) return {};
  Json obj = {{"kind", "Allocation"},
              {"metadata", {{"name", NameOf(*alloc)}, {"namespace", NamespaceOf(*alloc)}}},
              {"status", status}};
  lock.unlock();
  RequestOptions ro;
  ro.ns = NamespaceOf(obj);
  auto res = client_->PutStatus("allocations", NameOf(obj), obj, ro);
  if (!res) {
    if (res.error().code() == Code::kNotFound) return {};  // deleted meanwhile: the watch will say
    return std::unexpected(res.error());
  }
  lock.lock();
  last_status_[key] = status;
  return {};
}

void Agent::EmitLocked(const std::string& key, const char* type, const std::string& reason,
                       const std::string& message) {
  auto it = desired_.find(key);
  if (it == desired_.end()) return;
  Json involved = {{"kind", "Allocation"}, {"metadata", it->second.value("metadata", Json::object())}};
  std::lock_guard<std::mutex> lock(events_mu_);
  events_.push_back(MakeEvent(involved, type, reason, message, "agent/" + opts_.node_name));
}

Result<std::string> Agent::RequestedKey(const HttpRequest& req) {
  std::string ns = req.Param("namespace").empty() ? std::string(kDefaultNamespace) : req.Param("namespace");
  std::string name = req.matches[0];
  for (const auto& [field, value] : {std::pair<std::string, std::string>{"namespace", ns}, {"name", name}}) {
    if (!IsDnsLabel(value)) {
      return MakeError(Code::kInvalidArgument, "invalid " + field,
                       {{field, 0, 0, "must be a DNS label, got \"" + value + "\""}});
    }
  }
  return ns + "/" + name;
}

void Agent::ServeExecCreate(const HttpRequest& req, HttpResponse& res) {
  auto key = RequestedKey(req);
  if (!key) return SendApiError(res, key.error());
  auto options = ParseExecRequest(req.body);
  if (!options) return SendApiError(res, options.error());
  Driver* driver = nullptr;
  std::string task_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(*key);
    if (it != tasks_.end() && it->second.running) {
      driver = DriverFor(it->second.driver);
      task_id = it->second.handle.id;
    }
  }
  if (!driver) {
    return SendApiError(res, Error(Code::kNotFound, "allocation " + *key +
                                                        " is not running on node " + opts_.node_name));
  }
  auto id = exec_sessions_->Create(*driver, task_id, *options, kSessionOwner);
  if (!id) {
    Error e = id.error();
    // The driver could not start it (no such file, not executable): the command is at fault.
    if (e.code() == Code::kInvalidArgument && e.details().empty()) {
      e.mutable_details().push_back({"command[0]", 0, 0, e.message()});
    }
    return SendApiError(res, e);
  }
  res.status = 201;
  res.body = Json{{"id", *id}}.dump() + "\n";
}

void Agent::ServeExecSession(const HttpRequest& req, HttpResponse& res) {
  const std::string token = kSessionOwner;
  const std::string& id = req.matches[0];
  std::string what = req.path.substr(req.path.rfind('/') + 1);
  Status st;
  if (what == "output") {
    st = exec_sessions_->Attach(id, token, res);
  } else if (what == "input") {
    std::string eof = req.Param("eof");
    if (eof != "" && eof != "true" && eof != "false") {
      return SendApiError(res, Error(Code::kInvalidArgument, "invalid eof",
                                     {{"eof", 0, 0, "true or false, got \"" + eof + "\""}}));
    }
    st = exec_sessions_->Input(id, token, req.body, eof == "true");
  } else {
    auto size = ParseResizeRequest(req.body);
    if (!size) return SendApiError(res, size.error());
    st = exec_sessions_->Resize(id, token, size->first, size->second);
  }
  if (!st) return SendApiError(res, st.error());
  if (!res.stream) res.body = "{}\n";
}

void Agent::ServeLogs(const HttpRequest& req, HttpResponse& res) {
  auto key = RequestedKey(req);
  if (!key) return SendApiError(res, key.error());
  auto query = ParseLogsQuery(req);
  if (!query) return SendApiError(res, query.error());
  const std::string dir = TaskDir(*key);
  if (::access((dir + "/stdout.log").c_str(), F_OK) != 0) {
    return SendApiError(
        res, NotFound("no logs for allocation " + *key + " on node " + opts_.node_name).error());
  }
  ServeTaskLogs(dir, *query, res);
}

void Agent::SampleLimits() {
  // Only tasks with a pids limit: reading every task's cgroup each second would cost the idle
  // node CPU for nothing.
  std::vector<std::tuple<std::string, Driver*, std::string>> limited;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, t] : tasks_) {
      if (t.running && t.pids_limit > 0) limited.emplace_back(key, DriverFor(t.driver), t.handle.id);
    }
  }
  for (const auto& [key, driver, id] : limited) {
    if (!driver) continue;
    auto stats = driver->Stats(id);
    if (!stats) continue;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(key);
    if (it == tasks_.end() || stats->pids_limit_hits <= it->second.pids_limit_hits) continue;
    uint64_t more = stats->pids_limit_hits - it->second.pids_limit_hits;
    it->second.pids_limit_hits = stats->pids_limit_hits;
    EmitLocked(key, kEventWarning, "PidsLimitReached",
               "the pids limit of " + std::to_string(it->second.pids_limit) + " refused " +
                   std::to_string(more) + " fork(s) (" + std::to_string(stats->pids_limit_hits) +
                   " in all)");
    queue_.Add(key);
  }
}

void Agent::SampleLogs() {
  struct Sampled {
    std::string dir;
    LogLimits limits;
    Driver* driver;
    std::string id;
  };
  std::vector<Sampled> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, t] : tasks_) tasks.push_back({TaskDir(key), t.logs, DriverFor(t.driver), t.handle.id});
  }
  const int64_t now_ns = RealtimeNs();
  for (const auto& task : tasks) {
    // A relay or the docker driver's pump indexes and rotates its task's logs itself.
    if (task.driver && !task.id.empty()) {
      if (auto logs = task.driver->Logs(task.id); logs && logs->self_indexed) continue;
    }
    for (const char* stream : {"stdout", "stderr"}) {
      std::string log = task.dir + "/" + stream + ".log", index = task.dir + "/" + stream + ".idx";
      SampleLogSize(log, index, now_ns);
      std::string warning;
      if (auto rotated = RotateLog(log, index, task.limits, &warning); !rotated) {
        spdlog::warn("agent: {}", rotated.error().message());
      } else if (*rotated) {
        spdlog::debug("agent: rotated {}", log);
      }
      if (!warning.empty()) spdlog::warn("agent: {}", warning);
    }
  }
}

void Agent::FlushEvents() {
  std::vector<Json> batch;
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    batch.swap(events_);
  }
  for (const auto& e : batch) {
    RequestOptions ro;
    ro.ns = NamespaceOf(e);
    std::string name = NameOf(e);
    Result<Json> written;
    auto existing = client_->Get("events", name, ro);
    if (existing) {
      written = client_->Put("events", name, RepeatEvent(*existing).dump(), ro);
    } else {
      written = client_->Put("events", name, e.dump(), ro);
    }
    if (!written) spdlog::debug("agent: event {}: {}", name, written.error().message());
  }
}

void Agent::ProbeLoop() {
  auto last_heartbeat = std::chrono::steady_clock::now();
  auto last_log_sample = std::chrono::steady_clock::time_point();
  while (!stop_) {
    if (std::chrono::steady_clock::now() - last_log_sample >= std::chrono::milliseconds(kLogIndexPeriodMs)) {
      last_log_sample = std::chrono::steady_clock::now();
      SampleLogs();
      SampleLimits();
    }
    auto next_check = RunDueChecks();
    if (std::chrono::steady_clock::now() - last_heartbeat >= opts_.heartbeat) {
      last_heartbeat = std::chrono::steady_clock::now();
      if (auto st = RegisterNode(); !st) {
        spdlog::debug("agent: heartbeat: {}", st.error().message());
      }
    }
    FlushEvents();
    exec_sessions_->Sweep();
    // Until the next check is due (the implicit port check: every 50 ms), at most 200 ms.
    std::this_thread::sleep_until(std::max(next_check, std::chrono::steady_clock::now() + 10ms));
  }
}

void Agent::ArtifactGcLoop() {
  std::unique_lock<std::mutex> lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, opts_.artifacts.gc_interval, [this] { return stop_.load(); })) {
    lock.unlock();
    artifacts_->CollectGarbage();  // logs what it removed and why
    lock.lock();
  }
}

std::optional<std::set<std::string>> Agent::ArtifactsInUse() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!synced_) return std::nullopt;  // an allocation placed here may not be known yet
  std::set<std::string> used;
  // Placed here, whether started, waiting to restart, or failing to start.
  for (const auto& [key, alloc] : desired_) {
    std::string digest = ArtifactOf(alloc.value("spec", Json::object()).value("task", Json()));
    if (!digest.empty()) used.insert(digest);
  }
  // Running, recovered from a handle, or exited and not yet removed.
  for (const auto& [key, t] : tasks_) {
    if (t.artifact) {
      if (!t.artifact->empty()) used.insert(*t.artifact);
      continue;
    }
    // A handle from before agents recorded the artifact: its allocation's spec says, while it
    // is the spec the task runs; otherwise nobody can tell, and nothing is removed.
    auto it = desired_.find(key);
    if (it == desired_.end()) return std::nullopt;
    Json task_spec = it->second.value("spec", Json::object()).value("task", Json());
    if (SpecHash(task_spec) != t.spec_hash) return std::nullopt;
  }
  return used;
}

void Agent::ResetChecks(LocalTask& t) {
  t.checks.clear();
  for (auto& spec : CheckSpec::ForSpec(t.checks_spec)) {
    CheckState c;
    c.spec = std::move(spec);
    t.checks.push_back(std::move(c));
  }
  t.ready = t.running && t.checks.empty();
}

std::chrono::steady_clock::time_point Agent::RunDueChecks() {
  auto now = std::chrono::steady_clock::now();
  auto next = now + 200ms;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, t] : tasks_) {
    if (!t.running) continue;
    Driver* driver = DriverFor(t.driver);
    for (size_t i = 0; i < t.checks.size(); ++i) {
      CheckState& c = t.checks[i];
      if (c.in_flight) continue;
      if (now < c.due) {
        next = std::min(next, c.due);
        continue;
      }
      c.in_flight = true;
      c.due = now + c.spec.interval;
      next = std::min(next, c.due);
      checks_->Submit([this, key = key, uid = t.alloc_uid, i, spec = c.spec, driver,
                       id = t.handle.id] { OnCheck(key, uid, i, RunCheck(spec, driver, id)); });
    }
  }
  return next;
}

void Agent::OnCheck(const std::string& key, const std::string& alloc_uid, size_t index,
                    const CheckResult& r) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(key);
  // The task may have been replaced while the check ran: its result is then stale.
  if (it == tasks_.end() || it->second.alloc_uid != alloc_uid || index >= it->second.checks.size()) return;
  LocalTask& t = it->second;
  CheckState& c = t.checks[index];
  c.in_flight = false;
  if (!t.running) return;
  const std::string error_before = c.last_error;
  bool flipped = c.Record(r.ok, r.error);
  bool ready = std::all_of(t.checks.begin(), t.checks.end(), [](const CheckState& s) { return s.passing; });
  if (flipped && !c.passing) {
    bool implicit = !t.checks_spec.contains("checks");
    EmitLocked(key, kEventWarning, "Unhealthy",
               implicit ? "port " + std::to_string(c.spec.port) + " stopped accepting connections"
                        : "check " + c.spec.Describe() + " failed " + std::to_string(c.failures) +
                              " times in a row: " + r.error);
  }
  // A new readiness, or a new reason for failing: the status says it.
  if (flipped || ready != t.ready || c.last_error != error_before) queue_.Add(key);
  t.ready = ready;
}

}  // namespace mentat
