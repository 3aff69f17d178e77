// The SecurityProfile kind (apis/security_profile.h): a zero-trust policy a Service names,
// cluster-scoped, normalized whole by its own normalizer (metadata included).
#include "apis/kind_registry.h"
#include "apis/security_profile.h"

namespace mentat {
namespace {

std::string Text(const Json& o, const char* key) {
  const Json& spec = MapAt(o, "spec");
  auto it = spec.find(key);
  if (it == spec.end()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}
std::string Driver(const Json& o) { return Text(o, "driver"); }
std::string Isolation(const Json& o) { return Text(o, "isolation"); }

constexpr std::string_view kShortNames[] = {"profile", "profiles"};
constexpr PrinterColumn kColumns[] = {
    {"NAME", false, NameOf},
    {"DRIVER", false, Driver},
    {"ISOLATION", false, Isolation},
    {"AGE", false, Age},
};

const KindRegistration kRegistered({
    .kind = "SecurityProfile",
    .plural = "securityprofiles",
    .namespaced = false,
    .rank = 40,
    .short_names = kShortNames,
    .normalize_object = NormalizeSecurityProfile,
    .columns = kColumns,
});

}  // namespace
}  // namespace mentat
