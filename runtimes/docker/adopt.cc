// Adopting a container made outside Mentat (`adopt: {container: NAME}`): never a
// Mentat-labelled one, its image and ports as the spec says, and under a security profile its
// running settings within the profile's rules. Mentat then follows it as if it had started it.
#include "runtimes/docker/docker_driver.h"

#include <ctime>
#include <fstream>
#include <set>

#include <spdlog/spdlog.h>

#include "runtimes/docker/container_spec.h"
#include "runtimes/docker/log_pump.h"

namespace mentat {

namespace {

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

}  // namespace mentat
