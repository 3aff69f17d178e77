// The JSON Schema (draft 2020-12) of the Service manifest as users write it: every accepted
// form of the seeds, for editors and linters. `mt schema` prints it.
#pragma once

#include "apis/object.h"

namespace mentat {

Json ServiceManifestSchema();

}  // namespace mentat
