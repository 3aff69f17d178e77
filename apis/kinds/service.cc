// The Service kind: the workload users write. Its manifest comes in every seed form (flat,
// config.*, canonical); its spec steps are apis/service_spec.h, with each driver's fields in
// apis/drivers/. Admission places it under its namespace's NamespacePolicy (which may give it
// a default security profile) and then checks it against that profile.
#include "apis/kind_registry.h"
#include "apis/namespace_policy.h"
#include "apis/schema.h"
#include "apis/security_profile.h"
#include "apis/service_spec.h"

namespace mentat {
namespace {

Status Admit(Json& service, const SourceMap& marks, AdmissionContext& context) {
  MT_ASSIGN_OR_RETURN(auto policies, context.Stored(kNamespacePolicyKind));
  const Json& policy = PolicyFor(NamespaceOf(service), policies, context.FallbackPolicy());
  const bool named = service["spec"].value("security", Json::object()).contains("profile");
  MT_RETURN_IF_ERROR(ApplyNamespacePolicy(service, policy, marks));
  MT_ASSIGN_OR_RETURN(auto profiles, ProfilesByName(context));
  Status admitted = AdmitService(service, profiles, marks);
  if (admitted || named) return admitted;
  // The Service never named the profile that refused it: say where it came from.
  std::string profile = service["spec"]["security"]["profile"];
  std::vector<FieldError> details = admitted.error().details();
  for (auto& d : details) {
    d.message += " (" + profile + " is the default for driver " +
                 service["spec"].value("driver", "") + " in namespace " + NamespaceOf(service) +
                 ", from NamespacePolicy " + NameOf(policy) + "; see docs/security.md)";
  }
  return MakeError(admitted.error().code(), admitted.error().message(), std::move(details));
}

const Json& Spec(const Json& o) { return MapAt(o, "spec"); }
const Json& Status(const Json& o) { return MapAt(o, "status"); }

std::string Driver(const Json& o) { return Spec(o).value("driver", ""); }
std::string Ready(const Json& o) {
  return std::to_string(Status(o).value("readyReplicas", 0)) + "/" +
         std::to_string(Spec(o).value("count", 1));
}
std::string UpToDate(const Json& o) { return std::to_string(Status(o).value("updatedReplicas", 0)); }
std::string Phase(const Json& o) { return Status(o).value("phase", "Pending"); }
std::string Message(const Json& o) { return Status(o).value("message", ""); }

constexpr std::string_view kShortNames[] = {"svc"};
constexpr PrinterColumn kColumns[] = {
    {"NAME", false, NameOf},    {"DRIVER", false, Driver}, {"READY", false, Ready},
    {"UP-TO-DATE", false, UpToDate}, {"STATUS", false, Phase}, {"AGE", false, Age},
    {"MESSAGE", true, Message},
};

const KindRegistration kRegistered({
    .kind = "Service",
    .plural = "services",
    .namespaced = true,
    .rank = 10,
    .short_names = kShortNames,
    .flat_form = true,
    .operator_writes = true,
    .observes_generation = true,
    .normalize = NormalizeServiceSpec,
    .defaults = DefaultServiceSpec,
    .validate = ValidateServiceSpec,
    .admit = Admit,
    .columns = kColumns,
    .schema = ServiceManifestSchema,
});

}  // namespace
}  // namespace mentat
