// The Service spec's steps (the Service kind registers them: apis/kinds/service.cc). Normalize
// merges the seed forms (config.*, resources.*) into one pool of fields, checks the driver and
// count, then runs each field's step (apis/drivers/driver_spec.h) in rank order; default fills
// restart and what the driver derives; validate names fields the driver does not take and
// fields the driver requires.
#pragma once

#include "apis/kind_registry.h"

namespace mentat {

bool NormalizeServiceSpec(SpecDraft& draft, FieldChecker& check);
void DefaultServiceSpec(SpecDraft& draft);
void ValidateServiceSpec(SpecDraft& draft, FieldChecker& check);

// The merged resource keys (memory, cpu, ...) sit in draft.fields["resources"]; the input path
// of each is draft.source[kResourcePathKey + key].
inline constexpr const char* kResourcePathKey = "resources.";

}  // namespace mentat
