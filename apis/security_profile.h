// SecurityProfile objects (seed 001): the zero-trust policies a Service names in
// security.profile. Eight are built in: the seed's five, `hull`, and the restricted
// NamespacePolicy's defaults for exec and qemu, `exec-restricted` and `qemu`. Admission checks a Service
// against its profile before it is stored.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/kind_registry.h"
#include "apis/object.h"
#include "apis/yaml.h"

namespace mentat {

// `security: {profiles: {NAME: {...}}}` -> one canonical SecurityProfile per entry.
Result<std::vector<Json>> NormalizeProfilesDocument(const Json& input, const SourceMap& marks);
// A SecurityProfile in canonical form ({kind, metadata, spec}) -> validated canonical object.
Result<Json> NormalizeSecurityProfile(const Json& input, const SourceMap& marks);

// The built-in profiles, canonical, labelled mentat.io/builtin=true.
const std::vector<Json>& BuiltinProfiles();

// The built-in profiles overlaid with the stored ones, by name.
Result<std::map<std::string, Json>> ProfilesByName(AdmissionContext& context);

// Checks a canonical Service against the profile it names. `profiles` maps name -> profile
// object (built-ins and stored ones). Unknown profile: kInvalidArgument; a rule broken:
// kForbidden (403), each naming the field and the rule.
Status AdmitService(const Json& service, const std::map<std::string, Json>& profiles,
                    const SourceMap& marks = {});

}  // namespace mentat
