// The docker driver's spec: an image (required), Docker's security settings under `docker`
// (apis/docker_security.h) and, to take over a running container, `adopt`.
#include <algorithm>
#include <regex>

#include "apis/docker_security.h"
#include "apis/drivers/driver_spec.h"

namespace mentat {
namespace {

// cap_add / cap_drop: canonical without CAP_ and upper case.
void Capabilities(const Json& d, const char* k, const std::string& path, Json& out,
                  FieldChecker& check) {
  std::string kp = path + "." + k;
  if (!d[k].is_array()) return check.Fail(kp, "must be a list of capability names, e.g. [NET_BIND_SERVICE]");
  Json caps = Json::array();
  for (size_t i = 0; i < d[k].size(); ++i) {
    std::string ip = kp + "[" + std::to_string(i) + "]";
    auto c = check.Str(d[k][i], ip);
    if (!c) continue;
    std::string name = *c;
    std::transform(name.begin(), name.end(), name.begin(), ::toupper);
    if (name.rfind("CAP_", 0) == 0) name = name.substr(4);
    if (!IsCapabilityName(name)) {
      check.Fail(ip, "unknown capability \"" + *c + "\"");
      continue;
    }
    caps.push_back(name);
  }
  out[k] = caps;
}

// Docker's security settings, `docker: {privileged, cap_add, ...}`.
void Docker(const Json& d, const std::string& path, SpecDraft& draft, FieldChecker& check) {
  Json out = Json::object();
  if (!d.is_object()) {
    check.Fail(path, "must be a map, e.g. {read_only_rootfs: true, cap_drop: [ALL]}");
    draft.out["docker"] = out;
    return;
  }
  check.OnlyKeys(d, path, {"privileged", "cap_add", "cap_drop", "read_only_rootfs",
                           "no_new_privileges", "seccomp", "apparmor", "network_mode",
                           "pid_mode", "ipc_mode"});
  for (const char* k : {"privileged", "read_only_rootfs", "no_new_privileges"}) {
    if (!d.contains(k)) continue;
    if (auto b = check.Bool(d[k], path + "." + k)) out[k] = *b;
  }
  for (const char* k : {"cap_add", "cap_drop"}) {
    if (d.contains(k)) Capabilities(d, k, path, out, check);
  }
  auto one_of = [&](const char* k, const std::vector<std::string>& allowed) {
    if (!d.contains(k)) return;
    auto s = check.Str(d[k], path + "." + k, /*allow_empty=*/true);
    if (!s) return;
    if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + (a.empty() ? "\"\"" : a);
      check.Fail(path + "." + k, "must be one of " + list + ", got \"" + *s + "\"");
      return;
    }
    out[k] = *s;
  };
  one_of("seccomp", {"default", "strict", "unconfined"});
  one_of("network_mode", {"bridge", "host", "none"});
  one_of("pid_mode", {"", "host"});
  one_of("ipc_mode", {"", "private", "shareable", "host", "none"});
  if (d.contains("apparmor")) {
    if (auto a = check.Str(d["apparmor"], path + ".apparmor")) {
      static const std::regex re("^[A-Za-z0-9_.-]{1,64}$");
      if (!std::regex_match(*a, re)) {
        check.Fail(path + ".apparmor", "must be default, unconfined or an AppArmor profile name");
      } else {
        out["apparmor"] = *a;
      }
    }
  }
  draft.out["docker"] = out;
}

void Adopt(const Json& a, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (!a.is_object() || !a.contains("container") || !a["container"].is_string() || a.size() != 1) {
    check.Fail(path, "must be {container: NAME}");
  } else {
    d.out["adopt"] = a;
  }
}

void Validate(SpecDraft& d, FieldChecker& check) {
  if (!d.fields.contains("image")) check.Fail(d.prefix + "image", "required for driver docker");
}

constexpr std::string_view kFields[] = {"image", "adopt", "docker"};
constexpr SpecFieldStep kSteps[] = {{"docker", 170, Docker}, {"adopt", 230, Adopt}};
const SpecFieldRegistration kRegisteredFields(kSteps);
const DriverSpecRegistration kRegistered(
    {.name = "docker", .rank = 40, .fields = kFields, .validate = Validate});

}  // namespace
}  // namespace mentat
