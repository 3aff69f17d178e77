#include "runtimes/docker/docker_driver.h"

#include "runtimes/registry.h"

#include "runtimes/logs/log_writer.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "apis/sha256.h"

extern const char kMentatStrictSeccompJson[];  // seccomp_strict.json, embedded (BUILD)

namespace mentat {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char* StrictSeccompJson() { return kMentatStrictSeccompJson; }

namespace {

constexpr const char* kDockerLabelService = "mentat.service";
constexpr const char* kDockerLabelAllocation = "mentat.allocation";
constexpr const char* kDockerLabelNode = "mentat.node";
constexpr const char* kDockerLabelSpecHash = "mentat.spec-hash";
constexpr const char* kDockerLabelTask = "mentat.task";
constexpr const char* kDockerLabelNamespace = "mentat.namespace";
constexpr const char* kLogsSinceFile = "docker-logs.since";

// "mentat-" and the task id as it is: Docker names allow [a-zA-Z0-9_.-], so the dot between
// namespace and allocation stays and team-a.web-0 and team.a-web-0 stay apart. An id with
// any other character has those replaced and a hash of the whole id appended, so two ids
// never share a name.
std::string ContainerName(const std::string& task_id) {
  std::string n = "mentat-" + task_id;
  bool changed = false;
  for (char& c : n) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      c = '_';
      changed = true;
    }
  }
  if (changed) {
    std::string h = Sha256::Of(task_id);
    if (h.rfind("sha256:", 0) == 0) h.erase(0, 7);
    n += "--" + h.substr(0, 12);
  }
  return n;
}

std::string PortKey(int container, const std::string& proto) {
  return std::to_string(container) + "/" + proto;
}

// {"HOST:CONTAINER/proto"} of canonical spec ports.
std::set<std::string> SpecPorts(const Json& spec) {
  std::set<std::string> out;
  for (const auto& p : spec.value("ports", Json::array())) {
    out.insert(std::to_string(p.value("host", 0)) + ":" + PortKey(p.value("container", 0), p.value("protocol", "tcp")));
  }
  return out;
}

// The same set from a container's HostConfig.PortBindings.
std::set<std::string> ContainerPorts(const Json& info) {
  std::set<std::string> out;
  const Json& b = info.value("HostConfig", Json::object()).value("PortBindings", Json::object());
  if (!b.is_object()) return out;
  for (auto it = b.begin(); it != b.end(); ++it) {
    if (!it.value().is_array()) continue;
    for (const auto& binding : it.value()) {
      out.insert(binding.value("HostPort", "") + ":" + it.key());
    }
  }
  return out;
}

std::string Join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : ", ") + x;
  return out.empty() ? "none" : out;
}

// (seconds, nanoseconds) of an RFC 3339 timestamp with up to 9 fraction digits, in UTC ("Z").
// The log pump's rotation limits as HandleOf persisted them (defaults for an older handle).
LogLimits LogLimitsOf(const Json& state) {
  LogLimits limits;
  limits.max_file_bytes = state.value("logMaxFileBytes", limits.max_file_bytes);
  limits.max_files = state.value("logMaxFiles", limits.max_files);
  return limits;
}

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

// Containers (and exec'd commands) run under docker-init, which exits 128+N when its child
// dies of signal N (as a shell does): that is reported as the signal. A workload's own
// exit(137) reads the same.
void SetCodeOrSignal(ExitResult& r, int code) {
  if (code > 128 && code <= 128 + 64) {
    r.signal = code - 128;
    r.message = std::string("killed by signal ") + strsignal(*r.signal);
  } else {
    r.exit_code = code;
    r.message = "exited with code " + std::to_string(code);
  }
}

ExitResult ExitFromState(const Json& state, int64_t memory_mb) {
  ExitResult r;
  r.oom_killed = state.value("OOMKilled", false);
  SetCodeOrSignal(r, state.value("ExitCode", 0));
  if (r.oom_killed) {
    r.message = "OOM-killed: exceeded its " +
                (memory_mb > 0 ? std::to_string(memory_mb) + " MB " : std::string()) + "memory limit";
  }
  std::string err = state.value("Error", "");
  if (!err.empty()) r.message += " (" + err + ")";
  return r;
}

// Docker's message for a program that is not there, in the words the other drivers use.
std::string StartError(const std::string& message, const TaskConfig& config) {
  std::string lower = message;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower.find("no such file or directory") != std::string::npos ||
      lower.find("executable file not found") != std::string::npos) {
    std::string program = config.command.empty() ? "the image's entrypoint" : config.command;
    return program + ": No such file or directory (" + message + ")";
  }
  return message;
}

bool AppArmorEnabled(const std::string& path) {
  std::ifstream f(path);
  std::string v;
  return f && std::getline(f, v) && !v.empty() && v[0] == 'Y';
}

// The pids cgroup's refused forks (pids.events "max N") of the process `pid`.
uint64_t PidsLimitHits(int pid) {
  if (pid <= 0) return 0;
  std::ifstream cg("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, dir;
  while (std::getline(cg, line)) {
    // "4:pids:/docker/ID" (v1) or "0::/system.slice/docker-ID.scope" (v2).
    auto c1 = line.find(':');
    auto c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (controllers == "pids") dir = "/sys/fs/cgroup/pids" + path;
    else if (controllers.empty() && dir.empty()) dir = "/sys/fs/cgroup" + path;
  }
  std::ifstream ev(dir + "/pids.events");
  std::string key;
  uint64_t n = 0;
  while (ev >> key >> n) {
    if (key == "max") return n;
  }
  return 0;
}

// A stable hash of the task spec: 16 hex digits of its SHA-256.
std::string SpecHashLabel(const Json& spec) {
  std::string h = Sha256::Of(spec.dump());
  if (h.rfind("sha256:", 0) == 0) h.erase(0, 7);
  return h.substr(0, 16);
}

// A running container's security settings in the words of a Service spec (user, docker.*,
// volumes), over `spec` (its driver, profile, ports and ingress): what the manifest would have
// to ask for to get this container. Absent settings are written out (no cap_drop is an empty
// list, a user the image leaves unset is root) so that the rules see them.
Json AdoptedSpec(const Json& info, const Json& spec, const std::string& image_user) {
  Json out = spec;
  const Json& hc = info.value("HostConfig", Json::object());
  const Json& cfg = info.value("Config", Json::object());
  std::string user = cfg.value("User", "");
  if (user.empty()) user = image_user;
  out["user"] = user.empty() ? "0" : user;
  Json d = Json::object();
  d["privileged"] = hc.value("Privileged", false);
  d["read_only_rootfs"] = hc.value("ReadonlyRootfs", false);
  auto list = [](const Json& v) { return v.is_array() ? v : Json::array(); };
  d["cap_add"] = list(hc.value("CapAdd", Json()));
  d["cap_drop"] = list(hc.value("CapDrop", Json()));
  bool nnp = false;
  std::string seccomp = "default", apparmor = "default";
  for (const auto& o : list(hc.value("SecurityOpt", Json()))) {
    if (!o.is_string()) continue;
    std::string opt = o;
    // Docker accepts both "key=value" and the older "key:value".
    auto sep = opt.find_first_of("=:");
    std::string key = opt.substr(0, sep), value = sep == std::string::npos ? "" : opt.substr(sep + 1);
    if (key == "no-new-privileges") nnp = value.empty() || value == "true";
    if (key == "seccomp") {
      if (value == "unconfined") seccomp = "unconfined";
      else if (Json::parse(value, nullptr, false) == Json::parse(StrictSeccompJson(), nullptr, false)) seccomp = "strict";
      else seccomp = "custom";
    }
    if (key == "apparmor") apparmor = value == "docker-default" ? "default" : value;
  }
  d["no_new_privileges"] = nnp;
  d["seccomp"] = seccomp;
  d["apparmor"] = apparmor;
  std::string net = hc.value("NetworkMode", "");
  d["network_mode"] = net == "default" ? "bridge" : net;
  d["pid_mode"] = hc.value("PidMode", "");
  d["ipc_mode"] = hc.value("IpcMode", "");
  out["docker"] = d;
  // Bind mounts (named volumes are Docker's own storage, not host paths).
  Json volumes = Json::array();
  for (const auto& m : list(info.value("Mounts", Json()))) {
    if (m.value("Type", "") != "bind") continue;
    volumes.push_back({{"source", m.value("Source", "")}, {"target", m.value("Destination", "")},
                       {"read_only", !m.value("RW", true)}});
  }
  out["volumes"] = volumes;
  return out;
}

}  // namespace

Json DockerHostSecurity(const DockerSecurity& sec, bool apparmor) {
  Json hc = Json::object();
  hc["Privileged"] = sec.privileged;
  hc["ReadonlyRootfs"] = sec.read_only_rootfs;
  if (!sec.cap_add.empty()) hc["CapAdd"] = sec.cap_add;
  if (!sec.cap_drop.empty()) hc["CapDrop"] = sec.cap_drop;
  Json opts = Json::array();
  if (sec.no_new_privileges) opts.push_back("no-new-privileges:true");
  if (sec.seccomp == "strict") opts.push_back(std::string("seccomp=") + StrictSeccompJson());
  else if (sec.seccomp == "unconfined") opts.push_back("seccomp=unconfined");
  // AppArmor is named only where the host runs it: Docker refuses a profile it cannot load.
  if (apparmor && sec.apparmor != "default") {
    opts.push_back("apparmor=" + sec.apparmor);
  } else if (apparmor) {
    opts.push_back("apparmor=docker-default");
  }
  if (!opts.empty()) hc["SecurityOpt"] = opts;
  if (!sec.network_mode.empty()) hc["NetworkMode"] = sec.network_mode;
  if (!sec.pid_mode.empty()) hc["PidMode"] = sec.pid_mode;
  if (!sec.ipc_mode.empty()) hc["IpcMode"] = sec.ipc_mode;
  return hc;
}

// An exec'd command: a hijacked connection to dockerd carrying its stdin and output.
class DockerExecSession : public ExecSession {
 public:
  DockerExecSession(docker::EngineClient* engine, std::string exec_id, bool tty,
                    std::unique_ptr<docker::HijackedStream> stream, ExecCallbacks cb)
      : engine_(engine), exec_id_(std::move(exec_id)), tty_(tty), stream_(std::move(stream)), cb_(std::move(cb)) {
    thread_ = std::thread([this] { Pump(); });
  }
  ~DockerExecSession() override {
    if (!Done()) Kill();
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Status WriteStdin(std::string_view data) override { return stream_->Write(data); }
  Status CloseStdin() override {
    if (tty_) return stream_->Write("\x04");
    stream_->CloseWrite();
    return {};
  }
  Status Resize(unsigned short rows, unsigned short cols) override {
    if (!tty_) return FailedPrecondition("resize needs a tty");
    return engine_->ExecResize(exec_id_, rows, cols);
  }
  void Kill() override {
    // Docker has no exec kill: the command's pid is in the exec's inspect, as dockerd sees it.
    // A plain kill(pid) could hit another process: the exec may have ended and its pid been
    // reused, or the agent may see another pid namespace. So the process is pinned with a
    // pidfd, shown to be in this container's cgroup, the exec shown still running with that
    // pid, and only then signalled through the pidfd (which never reaches a reused pid).
    // Right after the start the exec may not be running yet, or running without its pid yet
    // (Pid 0, no exit code): a moment.
    auto info = engine_->ExecInspect(exec_id_);
    auto pending = [&] {
      return info && (*info)["ExitCode"].is_null() && (!info->value("Running", false) || info->value("Pid", 0) <= 0);
    };
    for (int i = 0; i < 100 && pending(); ++i) {
      std::this_thread::sleep_for(20ms);
      info = engine_->ExecInspect(exec_id_);
    }
    if (!info || !info->value("Running", false)) return;
    int pid = info->value("Pid", 0);
    std::string container = info->value("ContainerID", "");
    if (pid <= 0 || container.empty()) return;
    int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pfd < 0) return;
    std::ifstream cg("/proc/" + std::to_string(pid) + "/cgroup");
    std::string cgroups((std::istreambuf_iterator<char>(cg)), std::istreambuf_iterator<char>());
    auto again = engine_->ExecInspect(exec_id_);
    if (cgroups.find(container) != std::string::npos && again && again->value("Running", false) &&
        again->value("Pid", 0) == pid) {
      ::syscall(SYS_pidfd_send_signal, pfd, SIGKILL, nullptr, 0);
    } else {
      spdlog::warn("docker: exec {}: pid {} is not (or no longer) the exec's; not signalled", exec_id_.substr(0, 12), pid);
    }
    ::close(pfd);
  }
  std::optional<ExitResult> Wait(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return exit_.has_value(); })) return std::nullopt;
    return exit_;
  }

 private:
  bool Done() {
    std::lock_guard<std::mutex> lock(mu_);
    return exit_.has_value();
  }
  void Pump() {
    docker::StreamDemuxer demux([&](int stream, std::string_view d) {
      if (cb_.output) cb_.output(stream == 2 ? ExecStream::kStderr : ExecStream::kStdout, d);
    });
    while (!stop_) {
      auto chunk = stream_->Read(200ms);
      if (!chunk) continue;
      if (chunk->empty()) break;
      if (tty_) {
        if (cb_.output) cb_.output(ExecStream::kStdout, *chunk);
      } else {
        demux.Feed(*chunk);
      }
    }
    // The exit code is the exec's, once dockerd has recorded it.
    ExitResult r;
    for (int i = 0; i < 100; ++i) {
      auto info = engine_->ExecInspect(exec_id_);
      if (!info) {
        r.message = info.error().message();
        break;
      }
      if (!info->value("Running", false) && !(*info)["ExitCode"].is_null()) {
        SetCodeOrSignal(r, info->value("ExitCode", -1));
        break;
      }
      std::this_thread::sleep_for(20ms);  // dockerd records the exit just after the stream ends
    }
    if (cb_.exit) cb_.exit(r);
    {
      std::lock_guard<std::mutex> lock(mu_);
      exit_ = r;
    }
    cv_.notify_all();
  }

  docker::EngineClient* engine_;
  std::string exec_id_;
  bool tty_;
  std::unique_ptr<docker::HijackedStream> stream_;
  ExecCallbacks cb_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<ExitResult> exit_;
  std::thread thread_;
};

DockerDriver::DockerDriver(DockerDriverOptions options)
    : opts_(std::move(options)), engine_(std::make_unique<docker::EngineClient>(opts_.socket)) {}

Result<std::unique_ptr<DockerDriver>> DockerDriver::Create(DockerDriverOptions options) {
  std::unique_ptr<DockerDriver> d(new DockerDriver(std::move(options)));
  // dockerd may be down now: the fingerprint says so and the watcher keeps trying.
  if (auto v = d->engine_->Version(); !v) spdlog::warn("docker: {}", v.error().message());
  d->reporter_ = std::thread([p = d.get()] { p->ReportLoop(); });
  d->verifier_ = std::thread([p = d.get()] { p->VerifyLoop(); });
  d->events_ = std::make_unique<docker::EventWatcher>(
      d->engine_.get(), [p = d.get()](const Json& e) { p->OnEvent(e); }, [p = d.get()] { p->OnReconnect(); },
      [p = d.get()](const std::string& error) { p->OnLost(error); });
  return d;
}

DockerDriver::~DockerDriver() {
  events_.reset();
  // Containers keep running (Mars Mode); only the log pumps stop. All are told first, so they
  // wind down together.
  std::vector<std::shared_ptr<Task>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, t] : tasks_) all.push_back(t);
  }
  for (auto& t : all) t->stop_logs = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reporter_stop_ = true;
  }
  cv_.notify_all();
  if (verifier_.joinable()) verifier_.join();
  if (reporter_.joinable()) reporter_.join();  // after what is queued is reported
  for (auto& t : all) {
    t->JoinPump();
  }
}

std::shared_ptr<DockerDriver::Task> DockerDriver::Find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : it->second;
}

TaskHandle DockerDriver::HandleOf(const Task& t) const {
  TaskHandle h;
  h.driver = "docker";
  h.id = t.id;
  h.state = {{"container", t.container}, {"name", t.name}, {"pid", t.pid},
             {"startedAt", t.started_at}, {"taskDir", t.task_dir}, {"adopted", t.adopted},
             {"logMaxFileBytes", t.log_limits.max_file_bytes}, {"logMaxFiles", t.log_limits.max_files}};
  return h;
}

Result<Json> DockerDriver::ContainerConfig(const TaskConfig& config, const Json& profile) {
  const Json& spec = config.spec;
  std::string image = spec.value("image", "");
  if (image.empty()) return InvalidArgument("image: required for driver docker");
  Json c = {{"Image", image}, {"Tty", false}, {"OpenStdin", false}, {"AttachStdout", false},
            {"AttachStderr", false}};
  // command replaces the image's ENTRYPOINT and args its CMD (Kubernetes' rule): a task with
  // only args keeps the image's entrypoint.
  if (!config.command.empty()) {
    c["Entrypoint"] = Json::array({config.command});
    c["Cmd"] = config.args;
  } else if (!config.args.empty()) {
    c["Cmd"] = config.args;
  }
  Json env = Json::array();
  for (const auto& e : config.env) env.push_back(e.name + "=" + e.value);
  c["Env"] = env;
  if (!config.cwd.empty()) c["WorkingDir"] = config.cwd;
  c["Labels"] = {{kDockerLabelService, config.identity.service},
                 {kDockerLabelAllocation, config.identity.allocation},
                 {kDockerLabelNode, opts_.node_name},
                 {kDockerLabelTask, config.id},
                 {kDockerLabelNamespace, config.identity.namespace_name},
                 {kDockerLabelSpecHash, SpecHashLabel(spec)}};

  DockerSecurity sec = ResolveDockerSecurity(spec, profile);
  Json hc = DockerHostSecurity(sec, AppArmorEnabled(opts_.apparmor_enabled_path));
  if (!sec.user.empty()) c["User"] = sec.user;
  // Mentat restarts per the task's restart policy; Docker must not restart on its own.
  hc["RestartPolicy"] = {{"Name", "no"}};
  // docker-init as PID 1: signals reach the workload and zombies are reaped, as under the other
  // drivers' init (a shell as PID 1 would ignore SIGTERM it has no trap for).
  hc["Init"] = true;
  Json exposed = Json::object(), bindings = Json::object();
  for (const auto& p : spec.value("ports", Json::array())) {
    std::string key = PortKey(p.value("container", 0), p.value("protocol", "tcp"));
    exposed[key] = Json::object();
    Json b = {{"HostPort", std::to_string(p.value("host", 0))}};
    if (!opts_.publish_ip.empty()) b["HostIp"] = opts_.publish_ip;
    bindings[key].push_back(b);
  }
  if (!exposed.empty()) {
    c["ExposedPorts"] = exposed;
    hc["PortBindings"] = bindings;
  }
  Json binds = Json::array();
  for (const auto& v : spec.value("volumes", Json::array())) {
    std::string b = v.value("source", "") + ":" + v.value("target", "");
    if (v.value("read_only", false)) b += ":ro";
    binds.push_back(b);
  }
  if (!binds.empty()) hc["Binds"] = binds;
  const Json& res = spec.value("resources", Json::object());
  int64_t mem = res.value("memory_mb", int64_t{0});
  if (mem > 0) {
    hc["Memory"] = mem << 20;
    hc["MemorySwap"] = mem << 20;  // no swap beyond the limit: over it is an OOM kill
  }
  if (int64_t cpu = res.value("cpu_percent", int64_t{0}); cpu > 0) hc["NanoCpus"] = cpu * 10'000'000;
  if (int64_t pids = res.value("pids", int64_t{0}); pids > 0) hc["PidsLimit"] = pids;
  c["HostConfig"] = hc;
  return c;
}

Result<TaskHandle> DockerDriver::Start(const TaskConfig& in) {
  // The SecurityProfile's spec as the server holds it, fetched by the agent for this start
  // (security.resolved, never stored); null = the built-in profile of that name.
  Json profile;
  TaskConfig config = in;
  if (config.spec.contains("security") && config.spec["security"].is_object() &&
      config.spec["security"].contains("resolved")) {
    profile = config.spec["security"]["resolved"];
    config.spec["security"].erase("resolved");
  }
  // The rules admission applied, again: a spec that reached the agent another way is refused.
  MT_RETURN_IF_ERROR(CheckDockerRules(config.spec, profile));
  std::error_code ec;
  fs::create_directories(config.task_dir, ec);
  if (config.spec.contains("adopt")) {
    return Adopt(config, config.spec["adopt"].value("container", ""), profile);
  }
  // Volume sources as they are on this node (symlinks resolved), checked again: Docker is given
  // the resolved path, so a symlink cannot lead it somewhere the rules forbid.
  MT_ASSIGN_OR_RETURN(config.spec, ResolveVolumeSources(config.spec, profile));
  MT_ASSIGN_OR_RETURN(Json body, ContainerConfig(config, profile));
  const std::string name = ContainerName(config.id);
  auto created = engine_->CreateContainer(name, body);
  if (!created && created.error().code() == Code::kAlreadyExists) {
    // A container of an earlier run of this task (it exited, or an agent died before recording
    // it): replaced only when it carries this node's label *and* this task's id, never on the
    // name alone (another task's live container must not be taken for ours).
    auto old = engine_->InspectContainer(name);
    if (!old) return std::unexpected(old.error());
    Json labels = (*old)["Config"].value("Labels", Json::object());
    if (!labels.is_object()) labels = Json::object();
    std::string owner = labels.value(kDockerLabelNode, "");
    std::string task = labels.value(kDockerLabelTask, "");
    if (owner == opts_.node_name && task == config.id) {
      MT_RETURN_IF_ERROR(engine_->RemoveContainer(name, /*force=*/true));
      created = engine_->CreateContainer(name, body);
    } else {
      return MakeError(Code::kAlreadyExists,
                       "a container named " + name + " exists and " +
                           (owner.empty()                ? std::string("is not Mentat's")
                            : owner != opts_.node_name ? "belongs to node " + owner
                                                         : "belongs to task " + (task.empty() ? std::string("?") : task)));
    }
  }
  if (!created) {
    if (created.error().code() == Code::kNotFound) {
      return NotFound("image " + body["Image"].get<std::string>() + " is not on this node: " +
                      created.error().message());
    }
    return std::unexpected(created.error());
  }
  auto t = std::make_shared<Task>();
  t->id = config.id;
  t->container = *created;
  t->name = name;
  t->task_dir = config.task_dir;
  t->log_limits = config.log_limits;
  t->starting = true;  // CheckExited leaves it alone until it has been started and inspected
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_[config.id] = t;  // before start: its die event must find it
  }
  // A new container: its logs start afresh.
  fs::remove(config.task_dir + "/" + kLogsSinceFile, ec);
  auto started = engine_->StartContainer(t->container);
  if (!started) {
    Unregister(t, /*remove_container=*/true);
    return MakeError(started.error().code() == Code::kUnavailable ? Code::kUnavailable : Code::kInvalidArgument,
                     "starting container " + name + ": " + StartError(started.error().message(), config));
  }
  auto info = engine_->InspectContainer(t->container);
  if (!info) {
    // Not left registered: a late die event of this container must not reach the next run.
    Unregister(t, /*remove_container=*/true);
    return std::unexpected(info.error());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    t->pid = (*info)["State"].value("Pid", 0);
    t->started_at = (*info)["State"].value("StartedAt", "");
  }
  StartLogPump(t);
  {
    std::lock_guard<std::mutex> lock(mu_);
    t->starting = false;
  }
  // A die event that came while it was starting was skipped: look once more.
  CheckExited(t);
  spdlog::info("docker: started {} as container {} ({})", config.id, name, t->container.substr(0, 12));
  std::lock_guard<std::mutex> lock(mu_);
  return HandleOf(*t);
}

Result<Json> DockerDriver::ResolveVolumeSources(const Json& spec, const Json& profile) {
  Json out = spec;
  const Json& volumes = spec.value("volumes", Json::array());
  if (!volumes.is_array() || volumes.empty()) return out;
  const bool governed = spec.value("security", Json::object()).contains("profile");
  std::string data_dir;
  if (governed && !opts_.data_dir.empty()) {
    std::error_code ec;
    data_dir = fs::weakly_canonical(opts_.data_dir, ec).string();
    if (ec) data_dir = fs::path(opts_.data_dir).lexically_normal().string();
  }
  auto within = [](const std::string& path, const std::string& dir) {
    return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                           (dir == "/" || path[dir.size()] == '/'));
  };
  for (size_t i = 0; i < volumes.size(); ++i) {
    std::string src = volumes[i].value("source", "");
    std::string field = "volumes[" + std::to_string(i) + "].source";
    if (src.empty() || src[0] != '/') continue;  // a named volume: Docker's storage
    fs::path p = fs::path(src).lexically_normal();
    for (const auto& part : fs::path(src)) {
      if (part == "..") {
        return MakeError(Code::kInvalidArgument, field + ": " + src + " must not contain \"..\"",
                         {FieldError(field, 0, 0, "must not contain \"..\"")});
      }
    }
    // The longest part that exists is resolved (realpath); the rest, made by Docker, is
    // appended. A dangling symlink is an error, not something for Docker to create.
    fs::path existing = p, rest;
    std::error_code ec;
    while (existing.has_relative_path() && !fs::exists(fs::symlink_status(existing, ec))) {
      rest = rest.empty() ? existing.filename() : existing.filename() / rest;
      existing = existing.parent_path();
    }
    char buf[PATH_MAX];
    if (!::realpath(existing.c_str(), buf)) {
      std::string why = std::string(strerror(errno));
      return MakeError(Code::kInvalidArgument, field + ": " + src + ": cannot resolve on node " + opts_.node_name + ": " + why,
                       {FieldError(field, 0, 0, "cannot resolve " + existing.string() + ": " + why)});
    }
    std::string resolved = (rest.empty() ? fs::path(buf) : fs::path(buf) / rest).lexically_normal().string();
    while (resolved.size() > 1 && resolved.back() == '/') resolved.pop_back();
    out["volumes"][i]["source"] = resolved;
    if (!data_dir.empty() && (within(resolved, data_dir) || within(data_dir, resolved))) {
      std::string msg = src + (resolved != src ? " (" + resolved + ")" : "") +
                        " holds or is inside the agent's data directory " + data_dir;
      return MakeError(Code::kForbidden, field + ": " + msg, {FieldError(field, 0, 0, msg)});
    }
  }
  if (governed && out != spec) {
    if (auto st = CheckDockerRules(out, profile); !st) {
      Error e = st.error();
      return MakeError(Code::kForbidden, "with symlinks resolved on node " + opts_.node_name + ": " + e.message(),
                       e.details());
    }
  }
  return out;
}

Result<TaskHandle> DockerDriver::Adopt(const TaskConfig& config, const std::string& container,
                                       const Json& profile) {
  auto info = engine_->InspectContainer(container);
  if (!info) {
    if (info.error().code() == Code::kNotFound) {
      return NotFound("adopt.container: no container named \"" + container + "\" on node " + opts_.node_name);
    }
    return std::unexpected(info.error());
  }
  // Another Mentat task's container (of this namespace or another, this node or another) is
  // never adopted: deleting the adopter would remove a live container someone else owns.
  const Json& labels = (*info)["Config"].value("Labels", Json::object());
  if (labels.is_object()) {
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (it.key().rfind("mentat.", 0) == 0) {
        return FailedPrecondition("adopt.container: container \"" + container + "\" is managed by Mentat (label " +
                                  it.key() + "=" + (it.value().is_string() ? it.value().get<std::string>() : it.value().dump()) +
                                  "); only containers made outside Mentat can be adopted");
      }
    }
  }
  // Under a profile the container as it runs must keep the profile's rules, as a new one
  // would: its settings, read from inspect, are checked as if the manifest had asked for them.
  if (config.spec.value("security", Json::object()).contains("profile")) {
    std::string image_user;
    if (auto img = engine_->InspectImage(info->value("Image", "")); img) {
      image_user = img->value("Config", Json::object()).value("User", "");
    }
    Json as_spec = AdoptedSpec(*info, config.spec, image_user);
    if (auto st = CheckDockerRules(as_spec, profile); !st) {
      std::string why;
      for (const auto& f : st.error().details()) why += (why.empty() ? "" : "; ") + f.field + ": " + f.message;
      if (why.empty()) why = st.error().message();
      return MakeError(Code::kForbidden, "adopt.container: container \"" + container +
                                             "\" runs with settings its security profile forbids: " + why);
    }
  }
  // The spec must describe the container as it runs: same image, same published ports.
  std::string want = config.spec.value("image", "");
  std::string has = (*info)["Config"].value("Image", "");
  if (want != has) {
    auto img = engine_->InspectImage(want);
    if (!img || img->value("Id", "") != info->value("Image", "")) {
      return FailedPrecondition("adopt.container: container \"" + container + "\" runs image " + has +
                                ", the spec says " + want);
    }
  }
  auto spec_ports = SpecPorts(config.spec), ports = ContainerPorts(*info);
  if (spec_ports != ports) {
    return FailedPrecondition("adopt.container: container \"" + container + "\" publishes ports " +
                              Join(ports) + ", the spec says " + Join(spec_ports));
  }
  auto t = std::make_shared<Task>();
  t->id = config.id;
  t->container = info->value("Id", "");
  t->name = container;
  t->task_dir = config.task_dir;
  t->log_limits = config.log_limits;
  t->adopted = true;
  t->tty = (*info)["Config"].value("Tty", false);
  t->starting = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_[config.id] = t;
  }
  if (!(*info)["State"].value("Running", false)) {
    // Adopted but stopped (or it died since): Mentat now runs it.
    auto st = engine_->StartContainer(t->container);
    if (st) info = engine_->InspectContainer(t->container);
    if (!st || !info) {
      // Not left registered (its die event would reach the next run); the container is not
      // Mentat's to remove.
      Unregister(t, /*remove_container=*/false);
      return std::unexpected(!st ? st.error() : info.error());
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    t->pid = (*info)["State"].value("Pid", 0);
    t->started_at = (*info)["State"].value("StartedAt", "");
  }
  // Its logs from the time of adoption on: what it printed before is Docker's.
  {
    std::ofstream f(config.task_dir + "/" + kLogsSinceFile, std::ios::trunc);
    f << std::time(nullptr) << ".000000000\n";
  }
  StartLogPump(t);
  {
    std::lock_guard<std::mutex> lock(mu_);
    t->starting = false;
  }
  CheckExited(t);
  spdlog::info("docker: adopted container {} ({}) for {} without restarting it", container,
               t->container.substr(0, 12), config.id);
  std::lock_guard<std::mutex> lock(mu_);
  return HandleOf(*t);
}

Status DockerDriver::Recover(const TaskHandle& handle) {
  std::string container = handle.state.value("container", "");
  if (container.empty()) return InvalidArgument("docker handle of " + handle.id + " has no container");
  auto info = engine_->InspectContainer(container);
  if (!info) {
    if (info.error().code() == Code::kNotFound) {
      return NotFound("container " + handle.state.value("name", container) + " of " + handle.id + " is gone");
    }
    // dockerd did not answer (slow, restarting, an error of its own): that is no news of the
    // container. The task stays registered as it was (so orphan cleanup keeps its container)
    // and is looked at again with backoff; an exit found then is reported as any other.
    spdlog::warn("docker: recovering {}: {}; keeping it and looking again", handle.id, info.error().message());
    auto t = std::make_shared<Task>();
    t->id = handle.id;
    t->container = container;
    t->name = handle.state.value("name", "");
    t->task_dir = handle.state.value("taskDir", "");
  t->log_limits = LogLimitsOf(handle.state);
    t->log_limits = LogLimitsOf(handle.state);
    t->adopted = handle.state.value("adopted", false);
    t->pid = handle.state.value("pid", 0);
    t->started_at = handle.state.value("startedAt", "");
    t->unverified = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_[handle.id] = t;
    }
    StartLogPump(t);
    cv_.notify_all();
    return {};
  }
  const Json& state = (*info)["State"];
  if (!state.value("Running", false)) {
    // It died while the agent was down: the agent restarts it per its restart policy (and the
    // next Start replaces the dead container).
    ExitResult r = ExitFromState(state, (*info)["HostConfig"].value("Memory", int64_t{0}) >> 20);
    return NotFound("container " + handle.state.value("name", container) + " " + r.message +
                    " at " + state.value("FinishedAt", "") + ", while the agent was down");
  }
  auto t = std::make_shared<Task>();
  t->id = handle.id;
  t->container = info->value("Id", container);
  t->name = handle.state.value("name", "");
  t->task_dir = handle.state.value("taskDir", "");
  t->log_limits = LogLimitsOf(handle.state);
  t->adopted = handle.state.value("adopted", false);
  t->tty = (*info)["Config"].value("Tty", false);
  t->pid = state.value("Pid", 0);
  t->started_at = state.value("StartedAt", "");
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_[handle.id] = t;
  }
  StartLogPump(t);
  // It may have died between the inspect and the registration.
  CheckExited(t);
  return {};
}

void DockerDriver::StartLogPump(const std::shared_ptr<Task>& t) {
  std::lock_guard<std::mutex> ready_lock(mu_);
  t->pump_ready = true;
  cv_.notify_all();
  if (t->task_dir.empty()) return;
  // The files exist from the start, as under the other drivers: the log endpoint follows them.
  for (const char* f : {"/stdout.log", "/stderr.log"}) {
    int fd = ::open((t->task_dir + f).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
  }
  t->log_pump = std::thread([this, t] {
    // The pump is the logs' one writer: each message indexed at Docker's timestamp, so stdout
    // and stderr merge in order (log_writer.h), and rotated.
    auto writer = TaskLogWriter::Open(t->task_dir, t->log_limits);
    if (!writer) {
      spdlog::warn("docker: logs of {}: {}; not followed", t->id, writer.error().message());
      return;
    }
    const std::string since_file = t->task_dir + "/" + kLogsSinceFile;
    // Where the files end, as "SECONDS.NANOS COUNT": the timestamp of the last message written
    // and how many messages of the container's log carry exactly that timestamp up to there
    // (Docker gives every 16 KiB piece of a long line the same one).
    using Stamp = std::pair<int64_t, int64_t>;
    Stamp last{0, 0};
    int64_t last_count = 0;
    {
      std::ifstream f(since_file);
      std::string s;
      if (f >> s) {
        auto dot = s.find('.');
        last.first = std::atoll(s.substr(0, dot).c_str());
        if (dot != std::string::npos) last.second = std::atoll(s.substr(dot + 1).c_str());
        if (!(f >> last_count)) last_count = 0;
      }
    }
    auto saved_at = std::chrono::steady_clock::now();
    bool dirty = false;
    // Written aside and renamed over: a kill -9 midway leaves the old file or the new, never an
    // empty one. At most once a second while the stream runs, and when it ends.
    auto save = [&](bool force) {
      if (!dirty) return;
      auto now = std::chrono::steady_clock::now();
      if (!force && now - saved_at < 1s) return;
      std::string tmp = since_file + ".tmp";
      {
        std::ofstream f(tmp, std::ios::trunc);
        f << last.first << "." << std::setw(9) << std::setfill('0') << last.second << " " << last_count << "\n";
        if (!f.flush()) return;
      }
      std::error_code ec;
      fs::rename(tmp, since_file, ec);
      saved_at = now;
      dirty = false;
    };
    auto backoff = 200ms;
    while (!t->stop_logs) {
      docker::LogsOptions o;
      o.follow = true;
      o.timestamps = true;
      o.raw = true;
      // The resume point of this stream, fixed as it starts: Docker's since is inclusive, so
      // what comes before it is skipped and so are the first `resume_count` messages at it.
      const Stamp resume = last;
      const int64_t resume_count = last_count;
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
        auto st = (*writer)->Append(stream == 2 ? LogStream::kStderr : LogStream::kStdout, payload,
                                    ts.first * 1'000'000'000 + ts.second);
        if (!st) spdlog::warn("docker: logs of {}: {}", t->id, st.error().message());
        if (ts == last) {
          ++last_count;
        } else if (ts > last) {
          last = ts;
          last_count = 1;
        }
        dirty = true;
        save(false);
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
      auto st = engine_->Logs(t->container, o, [&](int stream, std::string_view d) {
        if (t->tty) {
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
      }, &t->stop_logs);
      save(true);
      if (t->stop_logs) break;
      // The stream ends when the container stops: then there is nothing more to follow.
      auto info = engine_->InspectContainer(t->container);
      if (info && !(*info)["State"].value("Running", false)) break;
      if (!info && info.error().code() == Code::kNotFound) break;
      if (!st) spdlog::warn("docker: following logs of {}: {}", t->id, st.error().message());
      for (auto until = std::chrono::steady_clock::now() + backoff;
           !t->stop_logs && std::chrono::steady_clock::now() < until;) {
        std::this_thread::sleep_for(20ms);
      }
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
    }
  });
}

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

Result<std::optional<ExitResult>> DockerDriver::Wait(const std::string& id, std::chrono::milliseconds timeout) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return t->exit_known; })) return std::optional<ExitResult>();
  return std::optional<ExitResult>(t->exit);
}

Status DockerDriver::Stop(const std::string& id, std::chrono::milliseconds grace, int signal) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  // The signal, the grace, then SIGKILL: as `docker stop`, with any signal and a grace under a
  // second (its ?t= counts whole seconds).
  auto exited = [&](std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, d, [&] { return t->exit_known; });
  };
  if (exited(0ms)) return {};
  auto st = engine_->KillContainer(t->container, signal);
  if (!st && st.error().code() == Code::kUnavailable) return st;
  if (exited(grace)) return {};
  engine_->KillContainer(t->container, SIGKILL);
  for (int i = 0; i < 100 && !exited(100ms); ++i) {
    CheckExited(t);  // should the events stream be away
  }
  if (!exited(0ms)) return Unavailable("container " + t->name + " did not stop after SIGKILL");
  return {};
}

Status DockerDriver::Destroy(const std::string& id, bool force) {
  auto t = Find(id);
  if (!t) return {};
  bool running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running = !t->exited;
  }
  if (running && !force) return FailedPrecondition("docker task " + id + " is still running");
  t->stop_logs = true;
  auto st = engine_->RemoveContainer(t->container, /*force=*/true);
  if (!st && st.error().code() != Code::kNotFound) return st;
  if (running) CheckExited(t);
  t->JoinPump();
  std::lock_guard<std::mutex> lock(mu_);
  tasks_.erase(id);
  return {};
}

Result<TaskStatus> DockerDriver::Inspect(const std::string& id) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  std::lock_guard<std::mutex> lock(mu_);
  TaskStatus s;
  s.pid = t->pid;
  s.started_at = t->started_at;
  s.state = t->exit_known ? TaskState::kExited : TaskState::kRunning;
  if (t->exit_known) s.exit = t->exit;
  return s;
}

Result<TaskStats> DockerDriver::Stats(const std::string& id) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  MT_ASSIGN_OR_RETURN(Json s, engine_->Stats(t->container));
  TaskStats out;
  const Json& mem = s.value("memory_stats", Json::object());
  out.memory_bytes = mem.value("usage", uint64_t{0});
  out.memory_peak_bytes = mem.value("max_usage", uint64_t{0});
  out.cpu_usage_ns = s.value("cpu_stats", Json::object()).value("cpu_usage", Json::object()).value("total_usage", uint64_t{0});
  out.pids = s.value("pids_stats", Json::object()).value("current", uint64_t{0});
  out.pids_limit_hits = PidsLimitHits(t->pid);
  return out;
}

Status DockerDriver::Signal(const std::string& id, int signal) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (t->exited) return FailedPrecondition("docker task " + id + " has exited");
  }
  auto st = engine_->KillContainer(t->container, signal);
  if (!st && st.error().code() == Code::kAlreadyExists) return FailedPrecondition(st.error().message());
  return st;
}

Result<ExecSessionPtr> DockerDriver::Exec(const std::string& id, const ExecOptions& options, ExecCallbacks callbacks) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (t->exited) return NotFound("docker task " + id + " is not running");
  }
  if (options.command.empty()) return InvalidArgument("exec: a command is required");
  Json cfg = {{"AttachStdin", options.stdin}, {"AttachStdout", true}, {"AttachStderr", true},
              {"Tty", options.tty}, {"Cmd", options.command}};
  if (options.tty) cfg["ConsoleSize"] = {options.rows, options.cols};
  auto exec_id = engine_->ExecCreate(t->container, cfg);
  if (!exec_id) {
    if (exec_id.error().code() == Code::kAlreadyExists) return NotFound(exec_id.error().message());
    return std::unexpected(exec_id.error());
  }
  MT_ASSIGN_OR_RETURN(std::string path, engine_->Path("/exec/" + *exec_id + "/start"));
  Json start = {{"Detach", false}, {"Tty", options.tty}};
  MT_ASSIGN_OR_RETURN(auto stream, docker::HijackedStream::Open(engine_.get(), path, start.dump()));
  if (options.tty) engine_->ExecResize(*exec_id, options.rows, options.cols);
  if (!options.stdin) stream->CloseWrite();
  return ExecSessionPtr(new DockerExecSession(engine_.get(), *exec_id, options.tty, std::move(stream),
                                              std::move(callbacks)));
}

Json DockerDriver::Fingerprint() {
  auto v = engine_->Version();
  if (!v) {
    return {{"healthy", false}, {"detail", v.error().message()}, {"socket", opts_.socket}};
  }
  auto api = engine_->Api();
  return {{"healthy", true},
          {"detail", "dockerd " + v->value("Version", "") + " on " + opts_.socket},
          {"version", v->value("Version", "")},
          {"apiVersion", api ? *api : ""},
          {"socket", opts_.socket}};
}

Json DockerDriver::Capabilities() const {
  return {{"exec", true}, {"signal", true}, {"recover", true}, {"isolation", "namespaces"},
          {"limits", {"memory", "cpu", "pids"}}};
}

Result<TaskLogs> DockerDriver::Logs(const std::string& id) {
  auto t = Find(id);
  if (!t) return NotFound("no docker task " + id);
  return TaskLogs{t->task_dir + "/stdout.log", t->task_dir + "/stderr.log", /*self_indexed=*/true};
}

Status DockerDriver::ResolveConfig(TaskConfig& config, const ConfigSources& sources) {
  // The task's SecurityProfile as the server holds it now, so that a custom or edited profile
  // governs the container; in this start's config only (never stored).
  if (!sources.attach_security_profile) return {};
  return sources.attach_security_profile(config.spec);
}

Status DockerDriver::CleanupAfterRecovery() {
  auto removed = CleanupOrphans();
  if (!removed) return std::unexpected(removed.error());
  return {};
}

// dockerd may be down when the agent starts: the driver exists all the same, its fingerprint
// says so and its event watcher reconnects.
MENTAT_REGISTER_DRIVER(docker, {
  .name = "docker",
  .root = WorkloadRoot::kImage,
  .make = [](const DriverContext& context) -> Result<DriverPtr> {
    DockerDriverOptions o;
    if (!context.docker_socket.empty()) o.socket = context.docker_socket;
    o.node_name = context.node_name;
    o.publish_ip = context.docker_publish_ip;
    o.data_dir = context.data_dir;
    return CreateDriver<DockerDriver>(std::move(o));
  },
  .probe = [](const DriverContext& context) -> Status {
    docker::EngineClient engine(context.docker_socket.empty() ? docker::kDefaultSocket
                                                              : context.docker_socket);
    if (auto v = engine.Version(); !v) return FailedPrecondition("docker: " + v.error().message());
    return {};
  },
});

Result<std::vector<std::string>> DockerDriver::CleanupOrphans() {
  MT_ASSIGN_OR_RETURN(Json list, engine_->ListContainers(std::vector<std::string>{std::string(kDockerLabelNode) + "=" + opts_.node_name}));
  std::set<std::string> owned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, t] : tasks_) owned.insert(t->container);
  }
  std::vector<std::string> removed;
  for (const auto& c : list) {
    std::string cid = c.value("Id", "");
    if (owned.count(cid)) continue;
    std::string name = c.value("Names", Json::array()).empty() ? cid : c["Names"][0].get<std::string>();
    if (!name.empty() && name[0] == '/') name.erase(0, 1);
    engine_->StopContainer(cid, 3);  // a short grace: nothing owns it any more
    auto st = engine_->RemoveContainer(cid, /*force=*/true);
    if (!st && st.error().code() != Code::kNotFound) {
      spdlog::warn("docker: removing orphan {}: {}", name, st.error().message());
      continue;
    }
    spdlog::info("docker: removed container {}: labelled for node {} but no task owns it", name, opts_.node_name);
    removed.push_back(name);
  }
  return removed;
}

}  // namespace mentat
