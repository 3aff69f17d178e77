// The exec driver's spec: a host process. It takes no driver-only field and needs a command.
#include "apis/drivers/driver_spec.h"

namespace mentat {
namespace {

void Validate(SpecDraft& d, FieldChecker& check) {
  if (!d.fields.contains("command")) check.Fail(d.prefix + "command", "required for driver exec");
}

const DriverSpecRegistration kRegistered({.name = "exec", .rank = 10, .validate = Validate});

}  // namespace
}  // namespace mentat
