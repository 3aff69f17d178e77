// NormalizeObject (apis/service.h): the steps every kind shares (kind, apiVersion, metadata),
// then the kind's own, from the registry (apis/kind_registry.h).
#include <algorithm>

#include "apis/kind_registry.h"
#include "apis/service.h"

namespace mentat {
namespace {

// The kind a manifest names, or the kind of kindless manifests.
Result<KindInfo> KindOfManifest(const Json& input, const SourceMap& marks) {
  if (!input.contains("kind")) return KindOfKindless();
  auto info = input["kind"].is_string() ? KindByName(input["kind"].get<std::string>())
                                        : std::nullopt;
  if (info && input["kind"].get<std::string>() == info->kind) return *info;
  std::vector<std::string> kinds;
  for (const auto& k : Kinds()) kinds.emplace_back(k.kind);
  std::string hint =
      input["kind"].is_string() ? ClosestMatch(input["kind"].get<std::string>(), kinds) : "";
  Mark m = FindMark(marks, "kind");
  return MakeError(Code::kInvalidArgument, "invalid manifest",
                   {{"kind", m.line, m.column,
                     "unknown kind" + (hint.empty() ? "" : ", did you mean \"" + hint + "\"?")}});
}

void CheckLabelsAndAnnotations(const Json& meta, const std::string& base, FieldChecker& n) {
  for (const char* field : {"labels", "annotations"}) {
    if (!meta.contains(field)) continue;
    const Json& m = meta[field];
    if (!m.is_object()) {
      n.Fail(base + field, "must be a map of strings");
      continue;
    }
    const bool labels = std::string(field) == "labels";
    for (auto it = m.begin(); it != m.end(); ++it) {
      const std::string path = base + field + "." + it.key();
      if (!it.value().is_string()) {
        n.Fail(path, "must be a string");
        continue;
      }
      const std::string& v = it.value().get_ref<const std::string&>();
      std::string problem = LabelKeyProblem(it.key());
      if (problem.empty() && labels) problem = LabelValueProblem(v);
      if (problem.empty() && !labels && v.find('\0') != std::string::npos) {
        problem = "value contains a NUL byte";
      }
      if (!problem.empty()) n.Fail(path, problem);
    }
  }
}

Json NormalizeMetadata(const Json& input, bool flat, bool namespaced, FieldChecker& n) {
  Json meta = Json::object();
  if (flat) {
    for (const char* k : {"name", "namespace", "labels", "annotations"}) {
      if (input.contains(k)) meta[k] = input[k];
    }
  } else if (input.contains("metadata")) {
    if (!input["metadata"].is_object()) {
      n.Fail("metadata", "must be a map");
      return meta;
    }
    meta = input["metadata"];
  }
  const std::string base = flat ? "" : "metadata.";
  if (!flat) {
    n.OnlyKeys(meta, "metadata",
               {"name", "namespace", "labels", "annotations", "uid", "resourceVersion",
                "generation", "creationTimestamp", "finalizers", "deletionTimestamp"});
  }
  if (!meta.contains("name")) {
    n.Fail(base + "name", "required");
  } else if (!meta["name"].is_string() || !IsDnsLabel(meta["name"].get<std::string>())) {
    n.Fail(base + "name",
           "must be a DNS label: 1-63 lowercase letters, digits or '-', starting and ending "
           "with a letter or digit");
  }
  if (namespaced) {
    if (!meta.contains("namespace") || meta["namespace"].is_null()) {
      meta["namespace"] = std::string(kDefaultNamespace);
    } else if (!meta["namespace"].is_string() || !IsDnsLabel(meta["namespace"].get<std::string>())) {
      n.Fail(base + "namespace", "must be a DNS label");
    }
  } else {
    meta.erase("namespace");
  }
  CheckLabelsAndAnnotations(meta, base, n);
  return meta;
}

Error Invalid(const std::string& kind, const Json& meta, std::vector<FieldError> errors) {
  std::string name = meta.is_object() && meta.contains("name") && meta["name"].is_string()
                         ? meta["name"].get<std::string>()
                         : "";
  return Error(Code::kInvalidArgument,
               kind + (name.empty() ? "" : " \"" + name + "\"") + " is invalid", std::move(errors));
}

// The spec as the input gives it: the flat form's fields, or `spec`.
void TakeSpec(const KindInfo& info, const Json& input, bool flat, SpecDraft& d, FieldChecker& n) {
  if (info.flat_form && flat) {
    d.fields = input;
    for (const char* k : {"apiVersion", "kind", "name", "namespace", "labels", "annotations"}) {
      d.fields.erase(k);
    }
    return;
  }
  d.prefix = "spec.";
  if (info.flat_form) {
    static const std::vector<std::string> top = {"apiVersion", "kind", "metadata", "spec",
                                                 "status"};
    for (auto it = input.begin(); it != input.end(); ++it) {
      if (std::find(top.begin(), top.end(), it.key()) == top.end()) n.Unknown(it.key(), it.key(), top);
    }
  } else if (flat) {
    n.Fail("metadata", "required for kind " + std::string(info.kind));
  }
  d.fields = input.value("spec", Json::object());
}

// The kind's steps, in order: normalize, then (unless the spec's shape stopped it) default
// and validate. A kind without steps stores its spec as written, which must be a map.
Json RunSpecSteps(const KindInfo& info, SpecDraft& d, FieldChecker& n) {
  if (!info.normalize) {
    if (!d.fields.is_object()) n.Fail("spec", "must be a map");
    return d.fields;
  }
  if (info.normalize(d, n)) {
    if (info.defaults) info.defaults(d);
    if (info.validate) info.validate(d, n);
  }
  return d.out;
}

}  // namespace

Result<Json> NormalizeObject(const Json& input, const SourceMap& marks) {
  if (!input.is_object()) {
    Mark m = FindMark(marks, "");
    return MakeError(Code::kInvalidArgument, "invalid manifest",
                     {{"", m.line, m.column, "a manifest must be a map"}});
  }
  MT_ASSIGN_OR_RETURN(KindInfo info, KindOfManifest(input, marks));
  const std::string kind(info.kind);
  bool flat = !input.contains("metadata") && !input.contains("spec");
  SpecDraft draft;
  if (flat && input.contains("name") && input["name"].is_string()) draft.name = input["name"];
  if (!flat && input.contains("metadata") && input["metadata"].is_object()) {
    const Json& meta = input["metadata"];
    draft.name = meta.value("name", Json("")).is_string() ? meta.value("name", "") : "";
  }
  FieldChecker n(marks);
  if (input.contains("apiVersion") && input["apiVersion"] != std::string(kApiVersion)) {
    n.Fail("apiVersion", "must be \"" + std::string(kApiVersion) + "\"");
  }
  if (info.normalize_object) {
    if (!n.ok()) return std::unexpected(Invalid(kind, Json::object(), n.TakeErrors()));
    return info.normalize_object(input, marks);
  }
  Json out = {{"apiVersion", std::string(kApiVersion)}, {"kind", kind}};
  out["metadata"] = NormalizeMetadata(input, flat, info.namespaced, n);
  TakeSpec(info, input, flat, draft, n);
  out["spec"] = RunSpecSteps(info, draft, n);
  if (input.contains("status") && input["status"].is_object()) out["status"] = input["status"];
  if (!n.ok()) return std::unexpected(Invalid(kind, out["metadata"], n.TakeErrors()));
  return out;
}

}  // namespace mentat
