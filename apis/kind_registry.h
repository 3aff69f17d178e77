// The kinds the API serves. Each kind registers, from its own file under apis/kinds/, what
// it is (names, scope), how a manifest of it becomes a stored object (normalize, default and
// validate steps for its spec, then admission against what is stored), the columns `mt get`
// shows of it and the JSON Schema `mt schema` prints. A new kind is a new file there, not a
// branch in the server or in mt.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "apis/error.h"
#include "apis/field_checker.h"
#include "apis/object.h"
#include "apis/yaml.h"

namespace mentat {

// One spec on its way to canonical form, handed through a kind's steps in order.
struct SpecDraft {
  std::string name;    // the object's metadata.name, for defaults derived from it
  std::string prefix;  // where the spec sits in the input: "" (flat form) or "spec."
  Json fields;         // the input's spec fields (after what merging the normalize step does)
  std::map<std::string, std::string> source;  // field -> its path in the input, for errors
  Json out = Json::object();                  // the canonical spec

  // The input path of `field`: where it came from, else where it would have been written.
  std::string PathOf(const std::string& field) const;
};

// Normalize: the input fields -> out, in canonical form; false when the spec is too wrong in
// shape (not a map) for the later steps to look at. Default: fills what was left out.
// Validate: the rules between fields. Each reports problems to the checker.
using NormalizeStep = bool (*)(SpecDraft& draft, FieldChecker& check);
using DefaultStep = void (*)(SpecDraft& draft);
using ValidateStep = void (*)(SpecDraft& draft, FieldChecker& check);

// What admission may read of the server's state: the stored objects of a kind, and the
// NamespacePolicy of namespaces no stored one names.
class AdmissionContext {
 public:
  virtual ~AdmissionContext() = default;
  virtual Result<std::vector<Json>> Stored(const std::string& kind) = 0;
  virtual const Json& FallbackPolicy() const = 0;
};

// Checks one canonical object against what is stored, completing it where policy says.
using AdmitStep = Status (*)(Json& object, const SourceMap& marks, AdmissionContext& context);

// A column of `mt get`'s table.
struct PrinterColumn {
  std::string_view header;  // "READY"
  bool wide;                // shown with -o wide only (after every other column)
  std::string (*value)(const Json& object);
};

struct KindInfo {
  std::string_view kind;    // "Service"
  std::string_view plural;  // "services"
  bool namespaced = true;
  // Where the kind sits in Kinds(), which lists kinds in this order whatever the link order.
  int rank = 0;
  std::span<const std::string_view> short_names;  // "svc": accepted wherever a kind is named
  // The kind of a manifest that names none, in the flat seed form as well ({name, driver, ...}).
  bool flat_form = false;
  // The operator role may write it (every kind: the admin role; the node role's rights are
  // apis/server/authorization.h's).
  bool operator_writes = false;
  // Its controller reports status.observedGeneration: a status without one does not describe
  // the current spec yet.
  bool observes_generation = false;
  // A kind with a whole-object normalizer of its own (metadata included) sets it; the steps
  // below are then unused.
  Result<Json> (*normalize_object)(const Json& input, const SourceMap& marks) = nullptr;
  NormalizeStep normalize = nullptr;  // nullptr: the spec is stored as written (a map)
  DefaultStep defaults = nullptr;
  ValidateStep validate = nullptr;
  AdmitStep admit = nullptr;  // nullptr: nothing stored constrains it
  std::span<const PrinterColumn> columns;  // empty: NAME and AGE
  // The JSON Schema of its manifest as users write it, which `mt schema` prints; nullptr: none.
  Json (*schema)() = nullptr;
};

// Adds a kind at static initialization: `static const KindRegistration r(kServiceKind);` in the
// kind's file, linked with alwayslink so the registration is never dropped.
struct KindRegistration {
  explicit KindRegistration(const KindInfo& info);
};

// Every kind the API serves, by rank.
const std::vector<KindInfo>& Kinds();
std::optional<KindInfo> KindByPlural(std::string_view plural);
// Accepts "Service", "service", "services", "svc", "allocation", "allocs", "node", ...
std::optional<KindInfo> KindByName(std::string_view name);
// The kind of a manifest that names no kind (the flat_form kind).
const KindInfo& KindOfKindless();
// The kind named exactly `kind` ("Service", as objects spell it), or nullptr.
const KindInfo* KindNamed(std::string_view kind);

// The table `mt get` prints of a kind: its columns, or NAME and AGE.
std::vector<std::string> PrinterHeader(const KindInfo& kind, bool wide);
std::vector<std::string> PrinterRow(const KindInfo& kind, const Json& object, bool wide);

// The map at object[key] ("spec", "status"), or an empty map: for printer columns.
const Json& MapAt(const Json& object, const char* key);

// "5s", "3m" since metadata.creationTimestamp (or any RFC 3339 time); "<unknown>" without one.
std::string Age(const Json& object);
std::string AgeOf(const std::string& rfc3339);

}  // namespace mentat
