#include "apis/service_spec.h"

#include <algorithm>
#include <optional>

#include "apis/drivers/driver_spec.h"
#include "apis/service.h"

namespace mentat {
namespace {

// Every key a Service spec accepts, at top level (seed form), under `config`, or under `spec`.
const std::vector<std::string>& SpecFields() {
  static const std::vector<std::string> f = {
      "driver",  "count",    "replicas",    "scale",   "image",     "base",     "rootfs",
      "command", "args",     "env",         "cwd",     "user",      "port",     "ports",
      "volumes", "resources", "memory",     "memory_mb", "cpu",     "cpu_percent", "cpu_mhz",
      "disk_mb", "max_pids", "pids",        "vcpus",   "security",  "deploy",   "ingress",
      "restart", "manifest", "binary",      "adopt",   "checks",    "logs",      "docker",
      "hull",
  };
  return f;
}

const std::vector<std::string>& ResourceFields() {
  static const std::vector<std::string> f = {"memory", "memory_mb", "cpu",  "cpu_percent",
                                             "cpu_mhz", "disk_mb",  "pids", "max_pids", "vcpus"};
  return f;
}

bool Contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

std::string DriverList() {
  std::string out;
  for (const auto& d : KnownDrivers()) out += (out.empty() ? "" : ", ") + d;
  return out;
}

// config.* holds the same fields one level down (seed 000). Merges, refusing conflicts.
void MergeConfig(const Json& in, SpecDraft& d, FieldChecker& check) {
  auto take = [&](const Json& from, const std::string& base) {
    for (auto it = from.begin(); it != from.end(); ++it) {
      if (base == d.prefix && it.key() == "config") continue;
      std::string path = base + it.key();
      if (d.fields.contains(it.key())) {
        if (d.fields[it.key()] != it.value()) {
          check.Fail(path, "conflicts with " + d.source[it.key()] + ", which sets a different value");
        }
        continue;
      }
      d.fields[it.key()] = it.value();
      d.source[it.key()] = path;
    }
  };
  take(in, d.prefix);
  if (in.contains("config")) {
    if (!in["config"].is_object()) {
      check.Fail(d.prefix + "config", "must be a map");
    } else {
      take(in["config"], d.prefix + "config.");
    }
  }
}

// Resource keys may sit under `resources` or among the fields; they join one pool, which
// replaces fields["resources"]. Then every field must be a known one.
void MergeResources(SpecDraft& d, FieldChecker& check) {
  Json resources = Json::object();
  std::map<std::string, std::string> rsrc;
  const std::string rpath = d.PathOf("resources");
  if (d.fields.contains("resources")) {
    const Json& r = d.fields["resources"];
    if (!r.is_object()) {
      check.Fail(rpath, "must be a map with memory, cpu, cpu_mhz, memory_mb, disk_mb");
    } else {
      for (auto it = r.begin(); it != r.end(); ++it) {
        if (!Contains(ResourceFields(), it.key())) {
          check.Unknown(rpath + "." + it.key(), it.key(), ResourceFields());
          continue;
        }
        resources[it.key()] = it.value();
        rsrc[it.key()] = rpath + "." + it.key();
      }
    }
  }
  for (const auto& k : ResourceFields()) {
    if (!d.fields.contains(k)) continue;
    if (resources.contains(k) && resources[k] != d.fields[k]) {
      check.Fail(d.source[k], "conflicts with " + rsrc[k] + ", which sets a different value");
      continue;
    }
    resources[k] = d.fields[k];
    rsrc[k] = d.source[k];
  }
  for (auto it = d.fields.begin(); it != d.fields.end(); ++it) {
    if (!Contains(SpecFields(), it.key())) check.Unknown(d.source[it.key()], it.key(), SpecFields());
  }
  if (d.fields.contains("resources") || !resources.empty()) d.fields["resources"] = resources;
  for (const auto& [k, path] : rsrc) d.source[kResourcePathKey + k] = path;
}

void NormalizeDriver(SpecDraft& d, FieldChecker& check) {
  if (!d.fields.contains("driver")) {
    check.Fail(d.prefix + "driver", "required: one of " + DriverList());
    return;
  }
  auto name = check.Str(d.fields["driver"], d.source["driver"]);
  if (!name) return;
  const auto& drivers = KnownDrivers();
  if (!Contains(drivers, *name)) {
    std::string hint = ClosestMatch(*name, drivers);
    check.Fail(d.source["driver"], "unknown driver \"" + *name + "\"" +
                                       (hint.empty() ? ", expected one of " + DriverList()
                                                     : ", did you mean \"" + hint + "\"?"));
    return;
  }
  d.out["driver"] = *name;
}

Json Scale(const Json& s, const std::string& path, FieldChecker& check) {
  Json out = Json::object();
  if (!s.is_object()) {
    check.Fail(path, "must be a map with min, max, metric, scale_up_at and scale_down_at");
    return out;
  }
  check.OnlyKeys(s, path, {"min", "max", "metric", "scale_up_at", "scale_down_at"});
  auto min = s.contains("min") ? check.Int(s["min"], path + ".min", 0, kMaxCount)
                               : std::optional<int64_t>(1);
  auto max = s.contains("max") ? check.Int(s["max"], path + ".max", 0, kMaxCount) : min;
  if (min && max && *min > *max) {
    check.Fail(path + ".max",
               "max (" + std::to_string(*max) + ") is below min (" + std::to_string(*min) + ")");
  }
  std::string metric = "cpu";
  if (s.contains("metric")) {
    if (auto m = check.Str(s["metric"], path + ".metric")) {
      if (*m != "cpu" && *m != "memory") {
        check.Fail(path + ".metric", "must be cpu or memory, got \"" + *m + "\"");
      }
      metric = *m;
    }
  }
  auto up = s.contains("scale_up_at") ? check.Int(s["scale_up_at"], path + ".scale_up_at", 1, 100)
                                      : std::optional<int64_t>(70);
  auto down = s.contains("scale_down_at")
                  ? check.Int(s["scale_down_at"], path + ".scale_down_at", 0, 99)
                  : std::optional<int64_t>(20);
  if (up && down && *down >= *up) {
    check.Fail(path + ".scale_down_at", "scale_down_at (" + std::to_string(*down) +
                                            ") must be below scale_up_at (" + std::to_string(*up) +
                                            ")");
  }
  if (min) out["min"] = *min;
  if (max) out["max"] = *max;
  out["metric"] = metric;
  if (up) out["scale_up_at"] = *up;
  if (down) out["scale_down_at"] = *down;
  return out;
}

// count / replicas / scale.min: one desired count.
void NormalizeCount(SpecDraft& d, FieldChecker& check) {
  std::optional<int64_t> count;
  std::string count_src;
  for (const char* k : {"count", "replicas"}) {
    if (!d.fields.contains(k)) continue;
    auto n = check.Int(d.fields[k], d.source[k], 0, kMaxCount);
    if (!n) continue;
    if (count && *count != *n) {
      check.Fail(d.source[k], "conflicts with " + count_src + " (" + std::to_string(*count) + ")");
      continue;
    }
    count = n;
    count_src = d.source[k];
  }
  if (d.fields.contains("scale")) {
    Json scale = Scale(d.fields["scale"], d.source["scale"], check);
    if (scale.contains("min") && scale.contains("max")) {
      int64_t lo = scale["min"], hi = scale["max"];
      if (count && (*count < lo || *count > hi)) {
        check.Fail(count_src, std::to_string(*count) + " is outside scale.min..scale.max (" +
                                  std::to_string(lo) + ".." + std::to_string(hi) + ")");
      }
      if (!count) count = lo;
    }
    d.out["scale"] = scale;
  }
  d.out["count"] = count.value_or(1);
}

}  // namespace

bool NormalizeServiceSpec(SpecDraft& d, FieldChecker& check) {
  Json in = std::move(d.fields);
  d.fields = Json::object();
  if (!in.is_object()) {
    check.Fail(d.prefix.empty() ? "spec" : d.prefix.substr(0, d.prefix.size() - 1),
               "must be a map");
    return false;
  }
  MergeConfig(in, d, check);
  MergeResources(d, check);
  NormalizeDriver(d, check);
  NormalizeCount(d, check);
  for (const auto& step : SpecFieldSteps()) {
    std::string field(step.field);
    if (d.fields.contains(field)) step.normalize(d.fields[field], d.PathOf(field), d, check);
  }
  return true;
}

void DefaultServiceSpec(SpecDraft& d) {
  if (!d.out.contains("restart")) d.out["restart"] = "always";
  if (const DriverSpec* driver = FindDriverSpec(d.out.value("driver", ""))) {
    if (driver->defaults) driver->defaults(d);
  }
}

void ValidateServiceSpec(SpecDraft& d, FieldChecker& check) {
  const std::string driver = d.out.value("driver", "");
  if (driver.empty()) return;
  // Fields that belong to other drivers are mistakes worth naming.
  for (const auto& field : DriverOnlyFields()) {
    auto takers = DriversTaking(field);
    if (d.fields.contains(field) && !Contains(takers, driver)) {
      check.Fail(d.source[field],
                 field + " applies to " + JoinedWithAnd(takers) + " only, not " + driver);
    }
  }
  const DriverSpec* spec = FindDriverSpec(driver);
  if (spec && spec->validate) spec->validate(d, check);
}

const std::vector<std::string>& KnownDrivers() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& d : DriverSpecs()) out.emplace_back(d.name);
    return out;
  }();
  return names;
}

}  // namespace mentat
