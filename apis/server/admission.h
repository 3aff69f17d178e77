// Admission: what the server checks of an object after it is normalized and before it is
// stored, beyond its own shape. Each kind registers its own admission step
// (apis/kind_registry.h: a Service is placed under its namespace's NamespacePolicy and checked
// against its profile; a NamespacePolicy must not claim another's namespace); this class runs
// it against the store.
#pragma once

#include <map>
#include <string>

#include "apis/error.h"
#include "apis/kind_registry.h"
#include "apis/object.h"
#include "apis/yaml.h"
#include "store/store.h"

namespace mentat {

class Admission : public AdmissionContext {
 public:
  // `fallback`: the NamespacePolicy of namespaces no stored policy names (BuiltinPolicy()).
  Admission(Store* store, Json fallback) : store_(store), fallback_(std::move(fallback)) {}

  // Admits one canonical object, completing it where policy says (a Service's default profile).
  // kForbidden for what policy or profile refuses, kInvalidArgument / kConflict for a bad
  // NamespacePolicy; each error names the field, with its line from `marks`.
  Status Admit(Json& object, const SourceMap& marks);

 private:
  Result<std::vector<Json>> Stored(const std::string& kind) override;
  const Json& FallbackPolicy() const override { return fallback_; }

  Store* store_;
  Json fallback_;
};

}  // namespace mentat
