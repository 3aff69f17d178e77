// The generic object model: every object is {apiVersion, kind, metadata, spec, status} held as
// JSON (the kinds the API serves are apis/kind_registry.h). Typed views (ServiceSpec, ...)
// decode from it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "apis/error.h"

namespace mentat {

using Json = nlohmann::json;

inline constexpr std::string_view kApiVersion = "mentat.io/v1";
inline constexpr std::string_view kDefaultNamespace = "default";

// Labels the control plane sets on objects it owns.
inline constexpr std::string_view kLabelService = "mentat.io/service";
inline constexpr std::string_view kLabelNode = "mentat.io/node";
// The apply set (`mt apply --applyset NAME`) an object was last applied with: the inventory
// that `--prune` deletes from, and nothing else.
inline constexpr std::string_view kLabelApplySet = "mentat.io/applyset";

// Identifies one object in the store.
struct ObjectKey {
  std::string kind;  // "Service"
  std::string ns;    // "" for cluster-scoped kinds
  std::string name;

  std::string ToString() const { return kind + "/" + (ns.empty() ? "" : ns + "/") + name; }
  bool operator==(const ObjectKey&) const = default;
  auto operator<=>(const ObjectKey&) const = default;
};

ObjectKey KeyOf(const Json& obj);

// Metadata accessors that tolerate missing fields.
std::string NameOf(const Json& obj);
std::string NamespaceOf(const Json& obj);
int64_t ResourceVersionOf(const Json& obj);  // 0 when absent
std::string LabelOf(const Json& obj, std::string_view label);

// RFC 3339 UTC with seconds, e.g. 2026-11-22T05:28:56Z.
std::string FormatTime(std::chrono::system_clock::time_point t);
std::optional<std::chrono::system_clock::time_point> ParseTime(const std::string& s);
std::string NowRfc3339();
// "500ms", "90s", "2m", "1h", "1m30s"; a bare number is seconds. Errors: kInvalidArgument.
Result<std::chrono::milliseconds> ParseDuration(const std::string& text);
// The inverse, for messages: "60s", "2m30s", "1.5s".
std::string FormatDuration(std::chrono::milliseconds d);
// An RFC 3339 time ("2026-11-22T06:20:48Z", "2026-11-22T06:20:48.250+01:00") as milliseconds
// since the Unix epoch; nullopt for anything else, trailing text included.
std::optional<int64_t> ParseRfc3339Millis(const std::string& s);
// "5s", "3m", "2h", "4d": the AGE column of kubectl.
std::string HumanAge(std::chrono::system_clock::duration d);

// A status condition as Kubernetes API conventions define it: {type, status "True"|"False",
// reason, message, lastTransitionTime, observedGeneration}. lastTransitionTime is carried over
// from `previous` (a conditions list) while the status stays the same.
Json MakeCondition(const std::string& type, bool ok, const std::string& reason,
                   const std::string& message, int64_t observed_generation, const Json& previous);

// 16 hex digits (FNV-1a) of the object's compact JSON: a change detector, not a security hash.
std::string ContentHash(const Json& obj);

// A random RFC 4122 version-4 UUID.
std::string NewUid();

// Equality-based label selector: "a=b,c!=d,e" (e: key exists). Parse errors name the term.
class LabelSelector {
 public:
  static Result<LabelSelector> Parse(std::string_view text);
  bool Matches(const Json& obj) const;
  bool empty() const { return terms_.empty(); }

 private:
  struct Term {
    std::string key;
    enum Op { kEq, kNotEq, kExists, kNotExists } op;
    std::string value;
  };
  std::vector<Term> terms_;
};

}  // namespace mentat
