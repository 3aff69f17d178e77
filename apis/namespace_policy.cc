#include "apis/namespace_policy.h"

#include <algorithm>
#include <set>

#include "apis/docker_security.h"
#include "apis/service.h"

namespace mentat {
namespace {

Json MakePolicy(const std::string& name, Json allowed, Json defaults, const char* host_paths) {
  return {{"apiVersion", std::string(kApiVersion)},
          {"kind", kNamespacePolicyKind},
          {"metadata", {{"name", name}, {"labels", {{"mentat.io/builtin", "true"}}}}},
          {"spec",
           {{"namespaces", {"*"}}, {"allowedProfiles", std::move(allowed)},
            {"defaultProfiles", std::move(defaults)}, {"hostSystemPaths", host_paths}}}};
}

bool Names(const Json& list, const std::string& item) {
  if (!list.is_array()) return false;
  return std::any_of(list.begin(), list.end(), [&](const Json& e) { return e == item; });
}

std::string Joined(const Json& list) {
  std::string out;
  for (const auto& e : list) out += (out.empty() ? "" : ", ") + e.get<std::string>();
  return out;
}

// A list of DNS labels, or exactly ["*"].
Json NameList(const Json& in, const std::string& path, const char* what, const FailFn& fail) {
  if (!in.is_array() || in.empty()) {
    fail(path, std::string("required: a list of ") + what + ", or [\"*\"] for any");
    return Json::array();
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < in.size(); ++i) {
    std::string at = path + "[" + std::to_string(i) + "]";
    if (!in[i].is_string()) {
      fail(at, "must be a string");
      continue;
    }
    std::string v = in[i];
    if (v == "*") {
      if (in.size() != 1) fail(at, "\"*\" stands alone: it already means every one");
    } else if (!IsDnsLabel(v)) {
      fail(at, "\"" + v.substr(0, 80) + "\" is not a DNS label");
    } else if (!seen.insert(v).second) {
      fail(at, v + " is listed twice");
    }
  }
  return in;
}

// Volumes from the host's system paths or its Docker socket, whatever the profile: refused by
// every policy but one that says hostSystemPaths: allowed.
Status CheckHostPaths(const Json& service, const std::string& policy_name, const SourceMap& marks) {
  std::vector<FieldError> denied;
  const Json& volumes = service["spec"].value("volumes", Json::array());
  for (size_t i = 0; i < volumes.size(); ++i) {
    std::string src = volumes[i].value("source", "");
    if (!IsHostSystemPath(src) && !ExposesDockerSocket(src)) continue;
    std::string path = "volumes[" + std::to_string(i) + "].source";
    Mark m = FindMark(marks, path);
    if (m.line == 0) m = FindMark(marks, "spec." + path);
    denied.push_back({path, m.line, m.column,
                      src + (ExposesDockerSocket(src) ? " exposes the Docker socket" : " is a host system path") +
                          "; this namespace's policy mounts only service data paths"});
  }
  if (denied.empty()) return {};
  return MakeError(Code::kForbidden,
                   "Service \"" + NameOf(service) + "\" is not allowed in namespace \"" + NamespaceOf(service) +
                       "\" by NamespacePolicy " + policy_name,
                   std::move(denied));
}

}  // namespace

const Json& BuiltinRestrictedPolicy() {
  static const Json p = MakePolicy(
      "restricted",
      {"firecracker", "qemu", "sandbox", "hull", "docker-hardened", "exec-restricted"},
      {{"firecracker", "firecracker"},
       {"qemu", "qemu"},
       {"sandbox", "sandbox"},
       {"hull", "hull"},
       {"docker", "docker-hardened"},
       {"exec", "exec-restricted"}},
      "forbidden");
  return p;
}

const Json& BuiltinPermissivePolicy() {
  static const Json p = MakePolicy("permissive", {"*"}, Json::object(), "allowed");
  return p;
}

Result<Json> BuiltinPolicy(const std::string& name) {
  if (name == "restricted") return BuiltinRestrictedPolicy();
  if (name == "permissive") return BuiltinPermissivePolicy();
  return MakeError(Code::kInvalidArgument, "--default-policy must be restricted or permissive, got \"" +
                                               name + "\"");
}

Json NormalizeNamespacePolicySpec(const Json& spec, const FailFn& fail) {
  Json out = Json::object();
  if (!spec.is_object()) {
    fail("spec", "must be a map");
    return out;
  }
  static const std::vector<std::string> fields = {"namespaces", "allowedProfiles", "defaultProfiles",
                                                  "hostSystemPaths"};
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (std::find(fields.begin(), fields.end(), it.key()) != fields.end()) continue;
    std::string hint = ClosestMatch(it.key(), fields);
    fail("spec." + it.key(), "unknown field" + (hint.empty() ? "" : ", did you mean \"" + hint + "\"?"));
  }
  out["namespaces"] = NameList(spec.value("namespaces", Json()), "spec.namespaces", "namespaces", fail);
  out["allowedProfiles"] =
      NameList(spec.value("allowedProfiles", Json()), "spec.allowedProfiles", "security profiles", fail);
  Json defaults = spec.value("defaultProfiles", Json::object());
  if (!defaults.is_object()) {
    fail("spec.defaultProfiles", "must be a map of driver to security profile");
    defaults = Json::object();
  }
  const auto& drivers = KnownDrivers();
  for (auto it = defaults.begin(); it != defaults.end(); ++it) {
    std::string at = "spec.defaultProfiles." + it.key();
    if (std::find(drivers.begin(), drivers.end(), it.key()) == drivers.end()) {
      std::string hint = ClosestMatch(it.key(), drivers);
      fail(at, "unknown driver" + (hint.empty() ? "" : ", did you mean \"" + hint + "\"?"));
    } else if (!it.value().is_string() || !IsDnsLabel(it.value().get<std::string>())) {
      fail(at, "must be the name of a security profile");
    } else if (!Names(out["allowedProfiles"], "*") && !Names(out["allowedProfiles"], it.value())) {
      fail(at, "profile " + it.value().get<std::string>() +
                   " is not in allowedProfiles: a default must be allowed itself");
    }
  }
  out["defaultProfiles"] = std::move(defaults);
  const Json& host_paths = spec.value("hostSystemPaths", Json("forbidden"));
  if (host_paths != "forbidden" && host_paths != "allowed") {
    fail("spec.hostSystemPaths", "must be forbidden (the default) or allowed");
  }
  out["hostSystemPaths"] = host_paths;
  return out;
}

const Json& PolicyFor(const std::string& ns, const std::vector<Json>& stored, const Json& fallback) {
  const Json* wildcard = nullptr;
  // Stored lists come in key order, so "first by name" is the order they are in.
  for (const auto& p : stored) {
    const Json& names = p.value("spec", Json::object()).value("namespaces", Json::array());
    if (Names(names, ns)) return p;
    if (!wildcard && Names(names, "*")) wildcard = &p;
  }
  return wildcard ? *wildcard : fallback;
}

std::pair<std::string, std::string> OverlappingPolicy(const Json& self, const std::vector<Json>& stored) {
  const Json& mine = self.value("spec", Json::object()).value("namespaces", Json::array());
  for (const auto& p : stored) {
    if (NameOf(p) == NameOf(self)) continue;
    for (const auto& ns : p.value("spec", Json::object()).value("namespaces", Json::array())) {
      if (Names(mine, ns)) return {NameOf(p), ns.get<std::string>()};
    }
  }
  return {};
}

Status ApplyNamespacePolicy(Json& service, const Json& policy, const SourceMap& marks) {
  Json& spec = service["spec"];
  const Json& rules = policy.value("spec", Json::object());
  const Json& allowed = rules.value("allowedProfiles", Json::array());
  const std::string driver = spec.value("driver", "");
  const std::string ns = NamespaceOf(service);
  std::string policy_name = NameOf(policy);
  if (LabelOf(policy, "mentat.io/builtin") == "true") policy_name += " (built in)";
  auto refuse = [&](const std::string& why) -> Status {
    Mark m = FindMark(marks, "security.profile");
    if (m.line == 0) m = FindMark(marks, "spec.security.profile");
    if (m.line == 0) m = FindMark(marks, "driver");
    if (m.line == 0) m = FindMark(marks, "spec.driver");
    return MakeError(Code::kForbidden,
                     "Service \"" + NameOf(service) + "\" is not allowed in namespace \"" + ns +
                         "\" by NamespacePolicy " + policy_name,
                     {{"security.profile", m.line, m.column, why}});
  };
  if (rules.value("hostSystemPaths", "forbidden") != "allowed") {
    MT_RETURN_IF_ERROR(CheckHostPaths(service, policy_name, marks));
  }
  const Json& security = spec.value("security", Json::object());
  if (!security.contains("profile")) {
    const Json& defaults = rules.value("defaultProfiles", Json::object());
    if (defaults.contains(driver)) {
      spec["security"]["profile"] = defaults[driver];
      return {};
    }
    if (Names(allowed, "*")) return {};
    return refuse("names no security profile, and this namespace has no default for driver " +
                  driver + "; name one of: " + Joined(allowed));
  }
  std::string profile = security["profile"];
  if (Names(allowed, "*") || Names(allowed, profile)) return {};
  return refuse("profile " + profile + " is not allowed in this namespace; allowed: " + Joined(allowed) +
                " (an admin allows more with a NamespacePolicy)");
}

}  // namespace mentat
