#include "apis/security_profile.h"

#include <algorithm>
#include <set>

#include "apis/docker_security.h"
#include "apis/service.h"

namespace mentat {
namespace {

// The fields a profile may set (seed 001, plus hull's layers), with the values each accepts.
// An empty list accepts any value of the right shape.
struct ProfileField {
  const char* name;
  enum Type { kString, kBool, kBoolOrPreferred, kStringList, kMap, kStringOrList } type;
  std::vector<std::string> values;
};

const std::vector<ProfileField>& ProfileFields() {
  static const std::vector<ProfileField> f = {
      {"driver", ProfileField::kString, {}},
      {"isolation", ProfileField::kString, {"strong", "medium", "transitional", "low"}},
      {"allow_privileged", ProfileField::kBool, {}},
      {"read_only_rootfs", ProfileField::kBoolOrPreferred, {}},
      {"persistent_volumes", ProfileField::kString, {"allowed", "forbidden"}},
      {"network_policy", ProfileField::kString, {}},
      {"intended_for", ProfileField::kStringList, {}},
      {"run_as_non_root", ProfileField::kBoolOrPreferred, {}},
      {"drop_capabilities", ProfileField::kStringOrList, {}},
      {"no_new_privileges", ProfileField::kBool, {}},
      {"seccomp", ProfileField::kString, {}},
      {"apparmor", ProfileField::kString, {}},
      {"docker_socket", ProfileField::kString, {"forbidden", "allowed"}},
      {"bind_mounts", ProfileField::kMap, {}},
      {"namespaces", ProfileField::kStringList, {}},
      {"pivot_root", ProfileField::kBool, {}},
      {"capabilities", ProfileField::kString, {}},
      {"cgroups_v2", ProfileField::kMap, {}},
      {"init_binary", ProfileField::kString, {}},
      {"host_access", ProfileField::kString, {"direct", "none"}},
      {"allowed_nodes", ProfileField::kStringList, {}},
      {"internet_exposed", ProfileField::kBool, {}},
      {"landlock", ProfileField::kBool, {}},
      {"user_namespace", ProfileField::kBoolOrPreferred, {}},
  };
  return f;
}

Json ProfileSpec(const Json& in, const std::string& prefix, const SourceMap& marks,
                 std::vector<FieldError>* errors) {
  auto fail = [&](const std::string& path, const std::string& msg) {
    Mark m = FindMark(marks, path);
    errors->push_back({path, m.line, m.column, msg});
  };
  Json out = Json::object();
  if (!in.is_object()) {
    fail(prefix.empty() ? "spec" : prefix.substr(0, prefix.size() - 1), "must be a map");
    return out;
  }
  std::vector<std::string> names;
  for (const auto& f : ProfileFields()) names.emplace_back(f.name);
  for (auto it = in.begin(); it != in.end(); ++it) {
    std::string path = prefix + it.key();
    auto f = std::find_if(ProfileFields().begin(), ProfileFields().end(),
                          [&](const ProfileField& pf) { return it.key() == pf.name; });
    if (f == ProfileFields().end()) {
      std::string hint = ClosestMatch(it.key(), names);
      fail(path, "unknown field" + (hint.empty() ? std::string() : ", did you mean \"" + hint + "\"?"));
      continue;
    }
    const Json& v = it.value();
    bool ok = true;
    switch (f->type) {
      case ProfileField::kString:
        ok = v.is_string();
        if (ok && !f->values.empty() &&
            std::find(f->values.begin(), f->values.end(), v.get<std::string>()) == f->values.end()) {
          std::string all;
          for (const auto& s : f->values) all += (all.empty() ? "" : ", ") + s;
          fail(path, "must be one of " + all);
          continue;
        }
        break;
      case ProfileField::kBool:
        ok = v.is_boolean();
        break;
      case ProfileField::kBoolOrPreferred:
        ok = v.is_boolean() || v == "preferred";
        break;
      case ProfileField::kStringList:
        ok = v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); });
        break;
      case ProfileField::kMap:
        ok = v.is_object();
        break;
      case ProfileField::kStringOrList:
        ok = v.is_string() ||
             (v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); }));
        break;
    }
    if (!ok) {
      static const char* shapes[] = {"a string", "true or false", "true, false or preferred",
                                     "a list of strings", "a map", "a string or a list of strings"};
      fail(path, std::string("must be ") + shapes[f->type]);
      continue;
    }
    out[it.key()] = v;
  }
  if (!in.contains("driver")) {
    fail(prefix + "driver", "required: the driver this profile governs");
  } else if (in["driver"].is_string()) {
    const auto& drivers = KnownDrivers();
    std::string d = in["driver"];
    if (std::find(drivers.begin(), drivers.end(), d) == drivers.end()) {
      fail(prefix + "driver", "unknown driver \"" + d + "\"");
    }
  }
  return out;
}

Json MakeProfile(const std::string& name, Json spec) {
  return {{"apiVersion", std::string(kApiVersion)},
          {"kind", "SecurityProfile"},
          {"metadata", {{"name", name}, {"labels", {{"mentat.io/builtin", "true"}}}}},
          {"spec", std::move(spec)}};
}

}  // namespace

Result<Json> NormalizeSecurityProfile(const Json& input, const SourceMap& marks) {
  std::vector<FieldError> errors;
  auto fail = [&](const std::string& path, const std::string& msg) {
    Mark m = FindMark(marks, path);
    errors.push_back({path, m.line, m.column, msg});
  };
  static const Json kNoMetadata = Json::object();
  const Json& meta = input.contains("metadata") ? input["metadata"] : kNoMetadata;
  if (!meta.is_object() || !meta.contains("name") || !meta["name"].is_string() ||
      !IsDnsLabel(meta["name"].get<std::string>())) {
    fail("metadata.name", "required, a DNS label");
  }
  for (auto it = input.begin(); it != input.end(); ++it) {
    static const std::set<std::string> top = {"apiVersion", "kind", "metadata", "spec", "status"};
    if (!top.count(it.key())) fail(it.key(), "unknown field");
  }
  Json spec = ProfileSpec(input.value("spec", Json::object()), "spec.", marks, &errors);
  if (!errors.empty()) {
    return MakeError(Code::kInvalidArgument, "SecurityProfile is invalid", std::move(errors));
  }
  Json m = Json::object();
  m["name"] = meta["name"];
  if (meta.contains("labels")) m["labels"] = meta["labels"];
  if (meta.contains("annotations")) m["annotations"] = meta["annotations"];
  Json out = Json::object();
  out["apiVersion"] = std::string(kApiVersion);
  out["kind"] = "SecurityProfile";
  out["metadata"] = std::move(m);
  out["spec"] = std::move(spec);
  return out;
}

Result<std::vector<Json>> NormalizeProfilesDocument(const Json& input, const SourceMap& marks) {
  std::vector<FieldError> errors;
  const Json& security = input["security"];
  for (auto it = security.begin(); it != security.end(); ++it) {
    if (it.key() != "profiles") {
      Mark m = FindMark(marks, "security." + it.key());
      errors.push_back({"security." + it.key(), m.line, m.column, "unknown field, expected profiles"});
    }
  }
  const Json& profiles = security["profiles"];
  if (!profiles.is_object() || profiles.empty()) {
    Mark m = FindMark(marks, "security.profiles");
    return MakeError(Code::kInvalidArgument, "invalid security profiles",
                     {{"security.profiles", m.line, m.column, "must be a map of profile name to policy"}});
  }
  std::vector<Json> out;
  for (auto it = profiles.begin(); it != profiles.end(); ++it) {
    std::string path = "security.profiles." + it.key();
    if (!IsDnsLabel(it.key())) {
      Mark m = FindMark(marks, path);
      errors.push_back({path, m.line, m.column, "profile name must be a DNS label"});
      continue;
    }
    Json spec = ProfileSpec(it.value(), path + ".", marks, &errors);
    out.push_back({{"apiVersion", std::string(kApiVersion)},
                   {"kind", "SecurityProfile"},
                   {"metadata", {{"name", it.key()}}},
                   {"spec", spec}});
  }
  if (!errors.empty()) {
    std::stable_sort(errors.begin(), errors.end(), [](const FieldError& a, const FieldError& b) {
      return a.line < b.line;
    });
    return MakeError(Code::kInvalidArgument, "security profiles are invalid", std::move(errors));
  }
  return out;
}

const std::vector<Json>& BuiltinProfiles() {
  // The recommended profiles of seed 001, verbatim, and the hull profile seed 000's Titan
  // example names.
  static const std::vector<Json> profiles = {
      MakeProfile("firecracker",
                  {{"driver", "firecracker"},
                   {"isolation", "strong"},
                   {"allow_privileged", false},
                   {"read_only_rootfs", true},
                   {"persistent_volumes", "allowed"},
                   {"network_policy", "private-by-default"},
                   {"intended_for",
                    {"public APIs", "multi-tenant workloads", "sensitive internal services"}}}),
      MakeProfile("docker-hardened",
                  {{"driver", "docker"},
                   {"isolation", "medium"},
                   {"run_as_non_root", true},
                   {"read_only_rootfs", true},
                   {"drop_capabilities", {"ALL"}},
                   {"no_new_privileges", true},
                   {"seccomp", "strict"},
                   {"apparmor", "default"},
                   {"docker_socket", "forbidden"},
                   {"bind_mounts", {{"host_system_paths", "forbidden"}, {"service_data_paths", "allowed"}}},
                   {"intended_for", {"nextjs SSR", "node services", "java application servers"}}}),
      MakeProfile("docker-legacy",
                  {{"driver", "docker"},
                   {"isolation", "transitional"},
                   {"run_as_non_root", "preferred"},
                   {"read_only_rootfs", "preferred"},
                   {"drop_capabilities", "minimal"},
                   {"no_new_privileges", true},
                   {"seccomp", "default"},
                   {"apparmor", "default"},
                   {"intended_for", {"legacy containerized services", "migration workloads"}}}),
      MakeProfile("sandbox",
                  {{"driver", "sandbox"},
                   {"isolation", "strong"},
                   {"namespaces", {"pid", "mount", "uts", "ipc"}},
                   {"pivot_root", true},
                   {"capabilities", "none"},
                   {"no_new_privileges", true},
                   {"cgroups_v2", {{"memory", "enforced"}, {"cpu", "enforced"}, {"pids", "enforced"}}},
                   {"init_binary", "sandbox-init"},
                   {"intended_for",
                    {"Next.js / React apps", "Node.js services", "static web servers",
                     "any workload that doesn't need a full VM"}}}),
      MakeProfile("exec-internal",
                  {{"driver", "exec"},
                   {"isolation", "low"},
                   {"host_access", "direct"},
                   {"allowed_nodes", {"internal-only"}},
                   {"internet_exposed", false},
                   {"intended_for", {"agents", "collectors", "operational helpers"}}}),
      // Not in the seeds: the restricted NamespacePolicy's defaults for exec and qemu. exec runs
      // on the host itself, so what can be refused is root and the host's system paths.
      MakeProfile("exec-restricted",
                  {{"driver", "exec"},
                   {"isolation", "low"},
                   {"run_as_non_root", true},
                   {"docker_socket", "forbidden"},
                   {"bind_mounts", {{"host_system_paths", "forbidden"}, {"service_data_paths", "allowed"}}},
                   {"intended_for", {"trusted binaries run as an unprivileged user"}}}),
      MakeProfile("qemu",
                  {{"driver", "qemu"},
                   {"isolation", "strong"},
                   {"allow_privileged", false},
                   {"read_only_rootfs", true},
                   {"persistent_volumes", "allowed"},
                   {"network_policy", "private-by-default"},
                   {"intended_for", {"the firecracker profile's workloads, where Firecracker cannot run"}}}),
      MakeProfile("hull",
                  {{"driver", "hull"},
                   {"isolation", "strong"},
                   {"namespaces", {"pid", "net", "mount", "uts", "ipc"}},
                   {"user_namespace", "preferred"},
                   {"pivot_root", true},
                   {"seccomp", "default"},
                   {"landlock", true},
                   {"no_new_privileges", true},
                   {"cgroups_v2", {{"memory", "enforced"}, {"cpu", "enforced"}, {"pids", "enforced"}}},
                   {"intended_for", {"BEAM / Elixir services", ".NET AOT services",
                                     "Node.js services that don't fit a sandbox base"}}}),
  };
  return profiles;
}

Status AdmitService(const Json& service, const std::map<std::string, Json>& profiles,
                    const SourceMap& marks) {
  const Json& spec = service.value("spec", Json::object());
  const Json& security = spec.value("security", Json::object());
  if (!security.contains("profile")) return {};
  std::string name = security["profile"];
  // Marks are keyed by input path; the profile sits at security.profile in both forms.
  auto where = [&](const std::string& path) {
    Mark m = FindMark(marks, path);
    if (m.line == 0) m = FindMark(marks, "spec." + path);
    return m;
  };
  auto it = profiles.find(name);
  if (it == profiles.end()) {
    std::vector<std::string> names;
    for (const auto& [n, p] : profiles) names.push_back(n);
    std::string hint = ClosestMatch(name, names);
    Mark m = where("security.profile");
    return MakeError(Code::kInvalidArgument, "Service \"" + NameOf(service) + "\" is invalid",
                     {{"security.profile", m.line, m.column,
                       "unknown security profile \"" + name + "\"" +
                           (hint.empty() ? "" : ", did you mean \"" + hint + "\"?")}});
  }
  const Json& p = it->second.value("spec", Json::object());
  std::vector<FieldError> denied;
  auto deny = [&](const std::string& field, const std::string& msg) {
    Mark m = where(field);
    denied.push_back({field, m.line, m.column, "profile " + name + ": " + msg});
  };
  std::string driver = spec.value("driver", "");
  if (p.value("driver", "") != driver) {
    deny("security.profile", "governs driver " + p.value("driver", std::string("?")) +
                                 ", but this service uses driver " + driver);
  }
  bool public_ingress = spec.contains("ingress");
  if (public_ingress && (p.value("internet_exposed", true) == false || name == "docker-legacy")) {
    deny("ingress", name == "docker-legacy"
                        ? "docker-legacy services are kept off public ingress entirely"
                        : "this profile forbids internet exposure");
  }
  const Json& mounts = p.value("bind_mounts", Json::object());
  bool no_system_paths = mounts.value("host_system_paths", "") == "forbidden";
  bool no_socket = p.value("docker_socket", "") == "forbidden";
  const Json& volumes = spec.value("volumes", Json::array());
  for (size_t i = 0; i < volumes.size(); ++i) {
    std::string src = volumes[i].value("source", "");
    std::string path = "volumes[" + std::to_string(i) + "].source";
    if (no_socket && ExposesDockerSocket(src)) {
      deny(path, "mounting the Docker socket is forbidden");
    } else if (no_system_paths && IsHostSystemPath(src)) {
      deny(path, src + " is a host system path; only service data paths may be mounted");
    }
  }
  for (auto& v : DockerRuleViolations(spec, p)) deny(v.field, v.rule);
  // Docker's user rule is DockerRuleViolations' (an image's own user may be fine there); other
  // drivers run the task as `user`, or as the agent (root) when it names none.
  if (driver != "docker" && p.value("run_as_non_root", Json(false)) == true) {
    std::string user = spec.value("user", "");
    if (user.empty()) {
      deny("user", "required: this profile runs tasks as a non-root user (e.g. user: nobody)");
    } else if (IsRootUser(user)) {
      deny("user", "\"" + user + "\" is root, or in group root or docker; this profile runs tasks as a "
                   "non-root user (e.g. user: nobody)");
    }
  }
  if (name == "docker-hardened" && public_ingress) {
    int exposed = static_cast<int>(spec.value("ports", Json::array()).size());
    bool privileged_port = false;
    for (const auto& port : spec.value("ports", Json::array())) {
      if (port.value("container", 0) < 1024) privileged_port = true;
    }
    if (exposed != 1 || privileged_port) {
      deny("ports", "an ingress-managed hardened service exposes exactly one non-privileged "
                    "port (1024 or above)");
    }
  }
  if (!denied.empty()) {
    return MakeError(Code::kForbidden,
                     "Service \"" + NameOf(service) + "\" is not allowed by security profile " + name,
                     std::move(denied));
  }
  return {};
}

}  // namespace mentat

namespace mentat {

Result<std::map<std::string, Json>> ProfilesByName(AdmissionContext& context) {
  std::map<std::string, Json> profiles;
  for (const auto& p : BuiltinProfiles()) profiles[NameOf(p)] = p;
  MT_ASSIGN_OR_RETURN(auto stored, context.Stored("SecurityProfile"));
  for (auto& p : stored) {
    std::string name = NameOf(p);
    profiles[name] = std::move(p);
  }
  return profiles;
}

}  // namespace mentat
