// The hull driver's spec: a hull manifest (inline, validated by the type the hull binary
// reads, or a path on the node), or rootfs and command to generate one from with its `hull`
// settings; a binary to run is shared with the VM drivers.
#include <algorithm>

#include "apis/drivers/driver_spec.h"
#include "apis/hull_manifest.h"

namespace mentat {
namespace {

void Manifest(const Json& m, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (!m.is_object()) {
    if (auto p = check.AbsPath(m, path)) d.out["manifest"] = *p;
    return;
  }
  SourceMap sub;
  std::string base = path + ".";
  for (const auto& [at, mark] : check.marks()) {
    if (at.rfind(base, 0) == 0) sub[at.substr(base.size())] = mark;
  }
  auto hm = HullManifest::FromJson(m, sub);
  if (!hm) {
    for (const auto& e : hm.error().details()) check.Adopt(base, e);
  } else {
    d.out["manifest"] = hm->ToJson();
  }
}

// The hull driver's own settings for the manifest it generates (seed 003's names).
void Hull(const Json& h, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (!h.is_object()) return check.Fail(path, "must be an object: {profile, network, hostname}");
  Json settings = Json::object();
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string at = path + "." + it.key();
    auto one_of = [&](const std::vector<std::string>& allowed) {
      auto v = check.Str(*it, at);
      if (!v) return;
      if (std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        check.Fail(at, "must be one of " + list);
      } else {
        settings[it.key()] = *v;
      }
    };
    if (it.key() == "profile") {
      one_of(HullProfiles());
    } else if (it.key() == "network") {
      one_of(HullNetworkModes());
    } else if (it.key() == "hostname") {
      if (auto v = check.Str(*it, at)) settings["hostname"] = *v;
    } else {
      check.Unknown(at, it.key(), {"profile", "network", "hostname"});
    }
  }
  d.out["hull"] = settings;
}

void Validate(SpecDraft& d, FieldChecker& check) {
  if (!d.fields.contains("manifest") && !(d.fields.contains("rootfs") && d.fields.contains("command"))) {
    check.Fail(d.prefix + "manifest",
               "driver hull needs a manifest, or rootfs and command to generate one from");
  }
}

constexpr std::string_view kFields[] = {"manifest", "binary", "hull"};
constexpr SpecFieldStep kSteps[] = {{"manifest", 200, Manifest}, {"hull", 220, Hull}};
const SpecFieldRegistration kRegisteredFields(kSteps);
const DriverSpecRegistration kRegistered(
    {.name = "hull", .rank = 30, .fields = kFields, .validate = Validate});

}  // namespace
}  // namespace mentat
