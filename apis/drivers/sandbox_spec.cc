// The sandbox driver's spec: a command in a base image (base) and/or an app root (rootfs).
#include <algorithm>

#include "apis/drivers/driver_spec.h"
#include "apis/service.h"

namespace mentat {
namespace {

const std::vector<std::string>& KnownBases() {
  static const std::vector<std::string> b = {"node22", "python312", "java21", "static"};
  return b;
}

void Base(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  auto b = check.Str(v, path);
  if (!b) return;
  const auto& bases = KnownBases();
  if (std::find(bases.begin(), bases.end(), *b) == bases.end()) {
    std::string hint = ClosestMatch(*b, bases);
    check.Fail(path, "unknown base \"" + *b + "\"" +
                         (hint.empty() ? ", expected one of node22, python312, java21, static"
                                       : ", did you mean \"" + hint + "\"?"));
  }
  d.out["base"] = *b;
}

void Validate(SpecDraft& d, FieldChecker& check) {
  if (!d.fields.contains("base") && !d.fields.contains("rootfs")) {
    check.Fail(d.prefix + "rootfs", "driver sandbox needs base, rootfs or both");
  }
  if (!d.fields.contains("command")) check.Fail(d.prefix + "command", "required for driver sandbox");
}

constexpr std::string_view kFields[] = {"base"};
constexpr SpecFieldStep kSteps[] = {{"base", 20, Base}};
const SpecFieldRegistration kRegisteredFields(kSteps);
const DriverSpecRegistration kRegistered(
    {.name = "sandbox", .rank = 20, .fields = kFields, .validate = Validate});

}  // namespace
}  // namespace mentat
