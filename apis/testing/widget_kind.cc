// Widget: a kind that exists only in tests, registered from this one file (the glob of
// :test_kinds picks it up; nothing else names it). It proves a kind is a file: the registry,
// NormalizeObject, admission and the API server's routes serve it like any built-in kind.
//
//   kind: Widget
//   metadata: {name: w1}
//   spec: {size: 3, color: blue}   # size 1-10, required; color red (default) or blue
//
// A Widget larger than 5 must be blue, and a namespace holds at most kWidgetQuota of them.
#include "apis/kind_registry.h"

namespace mentat {
namespace {

constexpr int kWidgetQuota = 3;

bool Normalize(SpecDraft& d, FieldChecker& check) {
  if (!d.fields.is_object()) {
    check.Fail("spec", "must be a map");
    return false;
  }
  check.OnlyKeys(d.fields, "spec", {"size", "color"});
  if (!d.fields.contains("size")) {
    check.Fail("spec.size", "required");
  } else if (auto size = check.Int(d.fields["size"], "spec.size", 1, 10)) {
    d.out["size"] = *size;
  }
  if (d.fields.contains("color")) {
    auto color = check.Str(d.fields["color"], "spec.color");
    if (color && *color != "red" && *color != "blue") {
      check.Fail("spec.color", "must be red or blue, got \"" + *color + "\"");
    } else if (color) {
      d.out["color"] = *color;
    }
  }
  return true;
}

void Defaults(SpecDraft& d) {
  if (!d.out.contains("color")) d.out["color"] = "red";
}

void Validate(SpecDraft& d, FieldChecker& check) {
  if (d.out.value("size", 0) > 5 && d.out["color"] != "blue") {
    check.Fail("spec.color", "a widget larger than 5 must be blue");
  }
}

Status Admit(Json& widget, const SourceMap&, AdmissionContext& context) {
  MT_ASSIGN_OR_RETURN(auto stored, context.Stored("Widget"));
  int others = 0;
  for (const auto& w : stored) {
    if (NamespaceOf(w) == NamespaceOf(widget) && NameOf(w) != NameOf(widget)) ++others;
  }
  if (others >= kWidgetQuota) {
    return MakeError(Code::kForbidden, "namespace " + NamespaceOf(widget) + " holds " +
                                           std::to_string(kWidgetQuota) + " widgets already");
  }
  widget["metadata"]["labels"]["widgets.mentat.io/admitted"] = "true";
  return {};
}

std::string Size(const Json& o) { return std::to_string(MapAt(o, "spec").value("size", 0)); }
std::string Color(const Json& o) { return MapAt(o, "spec").value("color", ""); }

constexpr std::string_view kShortNames[] = {"wd"};
constexpr PrinterColumn kColumns[] = {
    {"NAME", false, NameOf}, {"SIZE", false, Size}, {"AGE", false, Age}, {"COLOR", true, Color},
};

const KindRegistration kRegistered({
    .kind = "Widget",
    .plural = "widgets",
    .namespaced = true,
    .rank = 1000,
    .short_names = kShortNames,
    .normalize = Normalize,
    .defaults = Defaults,
    .validate = Validate,
    .admit = Admit,
    .columns = kColumns,
});

}  // namespace
}  // namespace mentat
