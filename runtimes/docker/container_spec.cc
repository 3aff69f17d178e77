// The body of POST /containers/create from a TaskConfig: name, labels, command, security
// (DockerHostSecurity), ports, volumes (resolved on this node) and resource limits.
#include "runtimes/docker/container_spec.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>

#include "apis/sha256.h"

extern const char kMentatStrictSeccompJson[];  // seccomp_strict.json, embedded (BUILD)

namespace mentat {

namespace fs = std::filesystem;

const char* StrictSeccompJson() { return kMentatStrictSeccompJson; }

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

namespace {

bool AppArmorEnabled(const std::string& path) {
  std::ifstream f(path);
  std::string v;
  return f && std::getline(f, v) && !v.empty() && v[0] == 'Y';
}

// A stable hash of the task spec: 16 hex digits of its SHA-256.
std::string SpecHashLabel(const Json& spec) {
  std::string h = Sha256::Of(spec.dump());
  if (h.rfind("sha256:", 0) == 0) h.erase(0, 7);
  return h.substr(0, 16);
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

Result<Json> ContainerCreateBody(const TaskConfig& config, const Json& profile,
                                 const DockerDriverOptions& opts) {
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
                 {kDockerLabelNode, opts.node_name},
                 {kDockerLabelTask, config.id},
                 {kDockerLabelNamespace, config.identity.namespace_name},
                 {kDockerLabelSpecHash, SpecHashLabel(spec)}};

  DockerSecurity sec = ResolveDockerSecurity(spec, profile);
  Json hc = DockerHostSecurity(sec, AppArmorEnabled(opts.apparmor_enabled_path));
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
    if (!opts.publish_ip.empty()) b["HostIp"] = opts.publish_ip;
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

Result<Json> ResolveVolumeSources(const Json& spec, const Json& profile,
                                  const DockerDriverOptions& opts) {
  Json out = spec;
  const Json& volumes = spec.value("volumes", Json::array());
  if (!volumes.is_array() || volumes.empty()) return out;
  const bool governed = spec.value("security", Json::object()).contains("profile");
  std::string data_dir;
  if (governed && !opts.data_dir.empty()) {
    std::error_code ec;
    data_dir = fs::weakly_canonical(opts.data_dir, ec).string();
    if (ec) data_dir = fs::path(opts.data_dir).lexically_normal().string();
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
      return MakeError(Code::kInvalidArgument, field + ": " + src + ": cannot resolve on node " + opts.node_name + ": " + why,
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
      return MakeError(Code::kForbidden, "with symlinks resolved on node " + opts.node_name + ": " + e.message(),
                       e.details());
    }
  }
  return out;
}

}  // namespace mentat
