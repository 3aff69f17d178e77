// The NamespacePolicy kind (apis/namespace_policy.h), cluster-scoped. Admission refuses a
// policy that claims a namespace another one claims, or whose defaults are not profiles of
// the driver they are the default for.
#include "apis/kind_registry.h"
#include "apis/namespace_policy.h"
#include "apis/security_profile.h"

namespace mentat {
namespace {

bool Normalize(SpecDraft& d, FieldChecker& check) {
  d.out = NormalizeNamespacePolicySpec(
      d.fields, [&](const std::string& path, const std::string& msg) { check.Fail(path, msg); });
  return true;
}

// A problem with one of spec.defaultProfiles, or "".
std::string DefaultProfileProblem(const std::map<std::string, Json>& profiles,
                                  const std::string& driver, const std::string& name) {
  auto p = profiles.find(name);
  if (p == profiles.end()) return "there is no security profile " + name;
  std::string governs = p->second["spec"].value("driver", "");
  if (governs != driver) return "profile " + name + " governs driver " + governs + ", not " + driver;
  return "";
}

Status Admit(Json& policy, const SourceMap& marks, AdmissionContext& context) {
  MT_ASSIGN_OR_RETURN(auto policies, context.Stored(kNamespacePolicyKind));
  auto [other, ns] = OverlappingPolicy(policy, policies);
  if (!other.empty()) {
    Mark m = FindMark(marks, "spec.namespaces");
    return MakeError(Code::kConflict, "NamespacePolicy \"" + NameOf(policy) + "\" is invalid",
                     {{"spec.namespaces", m.line, m.column,
                       "namespace " + ns + " is governed by NamespacePolicy " + other +
                           " already; a namespace has one policy"}});
  }
  MT_ASSIGN_OR_RETURN(auto profiles, ProfilesByName(context));
  std::vector<FieldError> errors;  // in the order of the drivers' names, as stored
  const Json& defaults = policy["spec"].value("defaultProfiles", Json::object());
  for (auto it = defaults.begin(); it != defaults.end(); ++it) {
    std::string problem = DefaultProfileProblem(profiles, it.key(), it.value());
    if (problem.empty()) continue;
    std::string path = "spec.defaultProfiles." + it.key();
    Mark m = FindMark(marks, path);
    errors.push_back({path, m.line, m.column, problem});
  }
  if (errors.empty()) return {};
  return MakeError(Code::kInvalidArgument, "NamespacePolicy \"" + NameOf(policy) + "\" is invalid",
                   std::move(errors));
}

std::string Joined(const Json& o, const char* key) {
  std::string out;
  for (const auto& e : MapAt(o, "spec").value(key, Json::array())) {
    if (e.is_string()) out += (out.empty() ? "" : ",") + e.get<std::string>();
  }
  return out;
}
std::string Namespaces(const Json& o) { return Joined(o, "namespaces"); }
std::string Allowed(const Json& o) { return Joined(o, "allowedProfiles"); }

constexpr std::string_view kShortNames[] = {"policy", "policies", "nspolicy"};
constexpr PrinterColumn kColumns[] = {
    {"NAME", false, NameOf},
    {"NAMESPACES", false, Namespaces},
    {"ALLOWED", false, Allowed},
    {"AGE", false, Age},
};

const KindRegistration kRegistered({
    .kind = "NamespacePolicy",
    .plural = "namespacepolicies",
    .namespaced = false,
    .rank = 50,
    .short_names = kShortNames,
    .normalize = Normalize,
    .admit = Admit,
    .columns = kColumns,
});

}  // namespace
}  // namespace mentat
