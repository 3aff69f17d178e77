// Mars Mode after an agent restart: Recover re-attaches to the container a persisted handle
// names, and CleanupOrphans removes the containers of this node that no task owns.
#include "runtimes/docker/docker_driver.h"

#include <set>

#include <spdlog/spdlog.h>

#include "runtimes/docker/container_exit.h"
#include "runtimes/docker/container_spec.h"

namespace mentat {

namespace {

// The log pump's rotation limits as HandleOf persisted them (defaults for an older handle).
LogLimits LogLimitsOf(const Json& state) {
  LogLimits limits;
  limits.max_file_bytes = state.value("logMaxFileBytes", limits.max_file_bytes);
  limits.max_files = state.value("logMaxFiles", limits.max_files);
  return limits;
}

}  // namespace

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

Status DockerDriver::CleanupAfterRecovery() {
  auto removed = CleanupOrphans();
  if (!removed) return std::unexpected(removed.error());
  return {};
}

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
