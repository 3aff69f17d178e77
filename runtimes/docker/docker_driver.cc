// The Docker driver's lifecycle: creation (the event watcher, reporter and verifier threads),
// Start, Stop, Destroy, Signal, Exec, the task table, and the driver's registration. Adoption
// (adopt.cc), recovery (recover.cc), exits (exits.cc), stats (stats.cc), the create body
// (container_spec.cc) and the log pump (log_pump.cc) are in files of their own.
#include "runtimes/docker/docker_driver.h"

#include "runtimes/registry.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "runtimes/docker/container_spec.h"
#include "runtimes/docker/exec_session.h"
#include "runtimes/docker/log_pump.h"

namespace mentat {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

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

}  // namespace

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
  MT_ASSIGN_OR_RETURN(config.spec, ResolveVolumeSources(config.spec, profile, opts_));
  MT_ASSIGN_OR_RETURN(Json body, ContainerCreateBody(config, profile, opts_));
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
    FollowContainerLogs(*engine_, {t->id, t->container, t->task_dir, t->log_limits, t->tty},
                        t->stop_logs);
  });
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

}  // namespace mentat
