#include "apis/server/admission.h"

#include "apis/namespace_policy.h"
#include "apis/security_profile.h"

namespace mentat {

Status Admission::Admit(Json& object, const SourceMap& marks) {
  std::string kind = object.value("kind", "");
  if (kind == "Service") return AdmitService(object, marks);
  if (kind == kNamespacePolicyKind) return AdmitPolicy(object, marks);
  return {};
}

Result<std::map<std::string, Json>> Admission::Profiles() {
  std::map<std::string, Json> profiles;
  for (const auto& p : BuiltinProfiles()) profiles[NameOf(p)] = p;
  MT_ASSIGN_OR_RETURN(auto stored, store_->List("SecurityProfile", {}));
  for (auto& p : stored.items) {
    std::string name = NameOf(p);
    profiles[name] = std::move(p);
  }
  return profiles;
}

Status Admission::AdmitService(Json& service, const SourceMap& marks) {
  MT_ASSIGN_OR_RETURN(auto policies, store_->List(kNamespacePolicyKind, {}));
  const Json& policy = PolicyFor(NamespaceOf(service), policies.items, fallback_);
  const bool named = service["spec"].value("security", Json::object()).contains("profile");
  MT_RETURN_IF_ERROR(ApplyNamespacePolicy(service, policy, marks));
  MT_ASSIGN_OR_RETURN(auto profiles, Profiles());
  Status admitted = mentat::AdmitService(service, profiles, marks);
  if (admitted || named) return admitted;
  // The Service never named the profile that refused it: say where it came from.
  std::string profile = service["spec"]["security"]["profile"];
  std::vector<FieldError> details = admitted.error().details();
  for (auto& d : details) {
    d.message += " (" + profile + " is the default for driver " + service["spec"].value("driver", "") +
                 " in namespace " + NamespaceOf(service) + ", from NamespacePolicy " + NameOf(policy) +
                 "; see docs/security.md)";
  }
  return MakeError(admitted.error().code(), admitted.error().message(), std::move(details));
}

Status Admission::AdmitPolicy(const Json& policy, const SourceMap& marks) {
  MT_ASSIGN_OR_RETURN(auto policies, store_->List(kNamespacePolicyKind, {}));
  auto [other, ns] = OverlappingPolicy(policy, policies.items);
  if (!other.empty()) {
    Mark m = FindMark(marks, "spec.namespaces");
    return MakeError(Code::kConflict, "NamespacePolicy \"" + NameOf(policy) + "\" is invalid",
                     {{"spec.namespaces", m.line, m.column,
                       "namespace " + ns + " is governed by NamespacePolicy " + other +
                           " already; a namespace has one policy"}});
  }
  MT_ASSIGN_OR_RETURN(auto profiles, Profiles());
  std::vector<FieldError> errors;
  const Json& defaults = policy["spec"].value("defaultProfiles", Json::object());
  for (auto it = defaults.begin(); it != defaults.end(); ++it) {
    std::string path = "spec.defaultProfiles." + it.key();
    std::string name = it.value();
    auto p = profiles.find(name);
    std::string problem;
    if (p == profiles.end()) {
      problem = "there is no security profile " + name;
    } else if (std::string governs = p->second["spec"].value("driver", ""); governs != it.key()) {
      problem = "profile " + name + " governs driver " + governs + ", not " + it.key();
    }
    if (problem.empty()) continue;
    Mark m = FindMark(marks, path);
    errors.push_back({path, m.line, m.column, problem});
  }
  if (errors.empty()) return {};
  return MakeError(Code::kInvalidArgument, "NamespacePolicy \"" + NameOf(policy) + "\" is invalid",
                   std::move(errors));
}

}  // namespace mentat
