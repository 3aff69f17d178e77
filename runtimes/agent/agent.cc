// The agent's lifecycle and wiring: Create makes the client, the artifact cache and the drivers;
// Start binds the endpoints, recovers tasks and starts the loops; Stop ends the loops and leaves
// workloads running. Also the probe loop (checks, sampling, heartbeat, events) and artifact GC.
#include "runtimes/agent/agent.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "apis/event.h"
#include "runtimes/agent/fingerprint.h"
#include "runtimes/logs/log_index.h"
#include "runtimes/registry.h"

namespace mentat {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Every registered driver (registry.h), made for this node.
Result<std::vector<DriverPtr>> MakeDrivers(const AgentOptions& opts) {
  DriverContext context;
  context.node_name = opts.node_name;
  context.data_dir = opts.data_dir;
  context.core_mhz = HostCapacity(opts.data_dir).value("cpu_mhz", int64_t{0});
  context.sandbox_init = opts.sandbox_init;
  context.docker_socket = opts.docker_socket;
  context.docker_publish_ip = opts.docker_publish_ip;
  context.hull_state_dir = opts.hull_state_dir;
  return MakeRegisteredDrivers(context);
}

}  // namespace

Result<std::unique_ptr<Agent>> Agent::Create(AgentOptions opts) {
  if (opts.node_name.empty()) opts.node_name = ThisHostLabel();
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
  agent->node_ = std::make_unique<NodeRegistration>(agent->client_, agent->opts_.node_name,
                                                    agent->opts_.labels);
  ArtifactCacheOptions cache_opts;
  cache_opts.dir = agent->opts_.data_dir + "/artifacts";
  cache_opts.source = [client = agent->client_](const std::string& digest, const auto& on_data) {
    return client->GetArtifact(digest, on_data);
  };
  cache_opts.limits = agent->opts_.artifacts;
  cache_opts.in_use = [a = agent.get()] { return a->ArtifactsInUse(); };
  MT_ASSIGN_OR_RETURN(agent->artifacts_, ArtifactCache::Create(std::move(cache_opts)));
  MT_ASSIGN_OR_RETURN(auto drivers, MakeDrivers(agent->opts_));
  for (auto& d : drivers) agent->drivers_[d->Name()] = std::move(d);
  for (auto& [name, driver] : agent->drivers_) {
    driver->SetExitHandler([a = agent.get()](const std::string& id, const ExitResult& exit) {
      a->OnExit(id, exit);
    });
  }
  return agent;
}

Agent::~Agent() { Stop(); }

Driver* Agent::DriverFor(const std::string& name) {
  auto it = drivers_.find(name);
  return it == drivers_.end() ? nullptr : it->second.get();
}

Status Agent::Start() {
  AgentEndpointsOptions eo;
  eo.listen = opts_.listen;
  eo.tls_cert = opts_.tls_cert;
  eo.tls_key = opts_.tls_key;
  eo.advertise = opts_.advertise;
  eo.node_name = opts_.node_name;
  eo.running_task = [this](const std::string& key) -> std::optional<AgentEndpointsOptions::RunningTask> {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(key);
    if (it == tasks_.end() || !it->second.running) return std::nullopt;
    return AgentEndpointsOptions::RunningTask{DriverFor(it->second.driver), it->second.handle.id};
  };
  eo.task_dir = [this](const std::string& key) { return handles_.TaskDir(key); };
  checks_ = std::make_unique<CheckRunner>();
  MT_ASSIGN_OR_RETURN(endpoints_, AgentEndpoints::Start(std::move(eo), server_key_));
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
  if (endpoints_) endpoints_->StopServing();
  queue_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  endpoints_.reset();  // exec'd commands end with the agent; workloads do not
  checks_.reset();
}

Status Agent::RegisterNode() {
  Json drivers = Json::object();
  for (auto& [name, d] : drivers_) drivers[name] = d->Fingerprint();
  return node_->Heartbeat({{"agentAddress", endpoints_->address()},
                           {"drivers", drivers},
                           {"capacity", HostCapacity(opts_.data_dir)},
                           {"artifacts", artifacts_->Usage().ToJson()}});
}

void Agent::EmitLocked(const std::string& key, const char* type, const std::string& reason,
                       const std::string& message) {
  auto it = desired_.find(key);
  if (it == desired_.end()) return;
  Json involved = {{"kind", "Allocation"}, {"metadata", it->second.value("metadata", Json::object())}};
  events_.Add(MakeEvent(involved, type, reason, message, "agent/" + opts_.node_name));
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
    events_.Flush(*client_);
    endpoints_->Sweep();
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

}  // namespace mentat
