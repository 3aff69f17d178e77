// Admission: what the server checks of an object after it is normalized and before it is
// stored, beyond its own shape. A Service is placed under its namespace's NamespacePolicy
// (which may give it a default security profile) and then checked against that profile; a
// NamespacePolicy must not claim a namespace another one claims, and its defaults must be
// profiles of the right driver.
#pragma once

#include <map>
#include <string>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/yaml.h"
#include "store/store.h"

namespace mentat {

class Admission {
 public:
  // `fallback`: the NamespacePolicy of namespaces no stored policy names (BuiltinPolicy()).
  Admission(Store* store, Json fallback) : store_(store), fallback_(std::move(fallback)) {}

  // Admits one canonical object, completing it where policy says (a Service's default profile).
  // kForbidden for what policy or profile refuses, kInvalidArgument / kConflict for a bad
  // NamespacePolicy; each error names the field, with its line from `marks`.
  Status Admit(Json& object, const SourceMap& marks);

  // Built-in profiles overlaid with the stored ones, by name.
  Result<std::map<std::string, Json>> Profiles();

 private:
  Status AdmitService(Json& service, const SourceMap& marks);
  Status AdmitPolicy(const Json& policy, const SourceMap& marks);

  Store* store_;
  Json fallback_;
};

}  // namespace mentat
