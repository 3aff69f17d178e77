#include "apis/docker_security.h"

#include <algorithm>
#include <optional>
#include <set>

#include "apis/security_profile.h"

namespace mentat {
namespace {

// Capabilities that amount to root on the host: even a transitional (docker-legacy) workload may
// not add them.
const std::set<std::string>& HostRootCapabilities() {
  static const std::set<std::string> caps = {
      "ALL",        "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO",   "SYS_PTRACE", "SYS_BOOT",
      "MAC_ADMIN",  "MAC_OVERRIDE", "BPF",     "PERFMON",     "DAC_READ_SEARCH", "SYS_TIME",
      "NET_ADMIN",  "CHECKPOINT_RESTORE"};
  return caps;
}

// The builtin profile a spec names, or null.
const Json* BuiltinProfileSpec(const std::string& name) {
  for (const auto& p : BuiltinProfiles()) {
    if (p["metadata"]["name"] == name) return &p["spec"];
  }
  return nullptr;
}

// `profile` true, false or "preferred" as a tri-state: required, off, preferred.
enum class Want { kOff, kPreferred, kRequired };
Want WantOf(const Json& profile, const char* key) {
  if (!profile.contains(key)) return Want::kOff;
  const Json& v = profile[key];
  if (v.is_boolean()) return v.get<bool>() ? Want::kRequired : Want::kOff;
  if (v.is_string() && v == "preferred") return Want::kPreferred;
  return Want::kOff;
}

bool DropsAll(const Json& profile) {
  const Json& d = profile.value("drop_capabilities", Json());
  return d.is_array() && std::find(d.begin(), d.end(), Json("ALL")) != d.end();
}

}  // namespace

bool IsRootUser(const std::string& user) {
  size_t colon = user.find(':');
  std::string u = user.substr(0, colon);
  std::string g = colon == std::string::npos ? "" : user.substr(colon + 1);
  auto zero = [](const std::string& id) { return !id.empty() && id.find_first_not_of('0') == std::string::npos; };
  return zero(u) || u == "root" || zero(g) || g == "root" || g == "docker";
}

bool IsCapabilityName(const std::string& name) {
  static const std::set<std::string> names = {
      "ALL",          "CHOWN",        "DAC_OVERRIDE",     "DAC_READ_SEARCH", "FOWNER",
      "FSETID",       "KILL",         "SETGID",           "SETUID",          "SETPCAP",
      "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",   "NET_RAW",
      "IPC_LOCK",     "IPC_OWNER",    "SYS_MODULE",       "SYS_RAWIO",       "SYS_CHROOT",
      "SYS_PTRACE",   "SYS_PACCT",    "SYS_ADMIN",        "SYS_BOOT",        "SYS_NICE",
      "SYS_RESOURCE", "SYS_TIME",     "SYS_TTY_CONFIG",   "MKNOD",           "LEASE",
      "AUDIT_WRITE",  "AUDIT_CONTROL", "SETFCAP",         "MAC_OVERRIDE",    "MAC_ADMIN",
      "SYSLOG",       "WAKE_ALARM",   "BLOCK_SUSPEND",    "AUDIT_READ",      "PERFMON",
      "BPF",          "CHECKPOINT_RESTORE"};
  return names.count(name) > 0;
}

namespace {

// "/a//b/./c/" -> "/a/b/c"; nullopt for a relative path or one with "..".
std::optional<std::string> NormalizeHostPath(const std::string& path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::string out;
  size_t at = 0;
  while (at < path.size()) {
    size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(at, end - at);
    at = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return std::nullopt;
    out += "/" + part;
  }
  return out.empty() ? "/" : out;
}

// `p` is `root`, under it, or holds it.
bool Overlaps(const std::string& p, const std::string& root) {
  if (p == "/" || p == root) return true;
  return root.rfind(p + "/", 0) == 0 || p.rfind(root + "/", 0) == 0;
}

}  // namespace

bool IsHostSystemPath(const std::string& path) {
  static const std::vector<std::string> roots = {
      "/etc",     "/proc",           "/sys",     "/dev",            "/boot",
      "/root",    "/var/lib/docker", "/var/log", "/var/lib/mentat", "/var/lib/hull",
      "/var/run/docker.sock", "/run/docker.sock", "/run/containerd", "/var/run/containerd",
      "/var/lib/containerd",  "/run/hull",        "/usr",            "/bin",  "/sbin",
      "/lib",     "/lib64"};
  auto p = NormalizeHostPath(path);
  if (!p) return true;
  for (const auto& r : roots) {
    if (Overlaps(*p, r)) return true;
  }
  return false;
}

bool ExposesDockerSocket(const std::string& path) {
  auto p = NormalizeHostPath(path);
  if (!p) return path.find("docker.sock") != std::string::npos;
  if (p->find("docker.sock") != std::string::npos) return true;
  return Overlaps(*p, "/var/run/docker.sock") || Overlaps(*p, "/run/docker.sock");
}

DockerSecurity ResolveDockerSecurity(const Json& spec, const Json& given) {
  DockerSecurity s;
  s.profile = spec.value("security", Json::object()).value("profile", "");
  static const Json kNone = Json::object();
  const Json* found = given.is_object() ? &given : BuiltinProfileSpec(s.profile);
  const Json& profile = found && found->value("driver", "") == "docker" ? *found : kNone;
  const Json& d = spec.value("docker", Json::object());

  s.user = spec.value("user", "");
  if (s.user.empty() && WantOf(profile, "run_as_non_root") == Want::kRequired) {
    s.user = kDockerDefaultNonRootUser;
  }
  s.read_only_rootfs = WantOf(profile, "read_only_rootfs") != Want::kOff;
  s.no_new_privileges = profile.value("no_new_privileges", false) == true;
  if (DropsAll(profile)) {
    s.cap_drop = {"ALL"};
  } else if (profile.value("drop_capabilities", Json()) == "minimal") {
    // Docker's default set less the two a service almost never needs and attackers like.
    s.cap_drop = {"NET_RAW", "MKNOD"};
  }
  if (profile.value("seccomp", "") == "strict") s.seccomp = "strict";

  // What the manifest asks for; CheckDockerRules refuses what the profile does not allow.
  s.privileged = d.value("privileged", false);
  if (d.contains("read_only_rootfs")) s.read_only_rootfs = d["read_only_rootfs"];
  if (d.contains("no_new_privileges")) s.no_new_privileges = d["no_new_privileges"];
  for (const auto& c : d.value("cap_add", Json::array())) s.cap_add.push_back(c);
  for (const auto& c : d.value("cap_drop", Json::array())) {
    if (std::find(s.cap_drop.begin(), s.cap_drop.end(), c) == s.cap_drop.end()) s.cap_drop.push_back(c);
  }
  if (d.contains("seccomp")) s.seccomp = d["seccomp"];
  if (d.contains("apparmor")) s.apparmor = d["apparmor"];
  if (d.contains("network_mode")) s.network_mode = d["network_mode"];
  if (d.contains("pid_mode")) s.pid_mode = d["pid_mode"];
  if (d.contains("ipc_mode")) s.ipc_mode = d["ipc_mode"];
  return s;
}

std::vector<RuleViolation> DockerRuleViolations(const Json& spec, const Json& profile) {
  std::vector<RuleViolation> denied;
  if (profile.value("driver", "") != "docker") return denied;
  auto deny = [&](const std::string& field, const std::string& msg) { denied.push_back({field, msg}); };
  const Json& d = spec.value("docker", Json::object());
  bool hardened = DropsAll(profile);  // docker-hardened, or a custom profile as strict

  if (WantOf(profile, "run_as_non_root") == Want::kRequired && spec.contains("user") &&
      IsRootUser(spec["user"])) {
    deny("user", "runs as root or in group root or docker; this profile requires a non-root user "
                 "(omit user to run as 65534)");
  }
  if (WantOf(profile, "read_only_rootfs") == Want::kRequired && d.value("read_only_rootfs", true) == false) {
    deny("docker.read_only_rootfs", "the root filesystem must be read-only; write to a volume instead");
  }
  if (d.value("privileged", false) == true) {
    deny("docker.privileged", "privileged containers are forbidden");
  }
  const Json& add = d.value("cap_add", Json::array());
  for (size_t i = 0; i < add.size(); ++i) {
    std::string cap = add[i];
    std::string field = "docker.cap_add[" + std::to_string(i) + "]";
    if (hardened) {
      deny(field, "all capabilities are dropped; " + cap + " cannot be added");
    } else if (HostRootCapabilities().count(cap)) {
      deny(field, cap + " amounts to root on the host and cannot be added");
    }
  }
  if (hardened && d.contains("cap_drop")) {
    const Json& drop = d["cap_drop"];
    if (std::find(drop.begin(), drop.end(), Json("ALL")) == drop.end()) {
      deny("docker.cap_drop", "must include ALL (this profile drops every capability)");
    }
  }
  if (profile.value("no_new_privileges", false) == true && d.value("no_new_privileges", true) == false) {
    deny("docker.no_new_privileges", "no-new-privileges is required");
  }
  std::string seccomp = d.value("seccomp", "");
  if (profile.value("seccomp", "") == "strict" && !seccomp.empty() && seccomp != "strict") {
    deny("docker.seccomp", "the strict seccomp profile is required, not " + seccomp);
  } else if (seccomp == "unconfined") {
    deny("docker.seccomp", "seccomp cannot be turned off");
  }
  if (profile.contains("apparmor") && d.value("apparmor", "") == "unconfined") {
    deny("docker.apparmor", "AppArmor cannot be turned off");
  }
  if (d.value("pid_mode", "") == "host") deny("docker.pid_mode", "the host's PID namespace is forbidden");
  if (d.value("ipc_mode", "") == "host") deny("docker.ipc_mode", "the host's IPC namespace is forbidden");
  if (hardened && d.value("network_mode", "") == "host") {
    deny("docker.network_mode", "the host's network namespace is forbidden");
  }
  return denied;
}

Status CheckDockerRules(const Json& spec, const Json& given, const SourceMap& marks) {
  std::string name = spec.value("security", Json::object()).value("profile", "");
  const Json* profile = given.is_object() ? &given : BuiltinProfileSpec(name);
  if (!profile) return {};
  Json service = {{"kind", "Service"}, {"metadata", {{"name", "task"}}}, {"spec", spec}};
  std::map<std::string, Json> profiles = {
      {name, {{"kind", "SecurityProfile"}, {"metadata", {{"name", name}}}, {"spec", *profile}}}};
  return AdmitService(service, profiles, marks);
}

}  // namespace mentat
