// The Service spec fields that say what runs and with what: image, rootfs, command, args, env,
// cwd, user, volumes, resources and binary, whatever the driver (driver_spec.h ranks them).
#include <algorithm>
#include <regex>
#include <set>

#include "apis/drivers/driver_spec.h"
#include "apis/service.h"
#include "apis/service_spec.h"

namespace mentat {
namespace {

// Host paths no workload may use as its root filesystem.
bool IsHostSystemRoot(const std::string& p) {
  static const std::set<std::string> paths = {"/", "/etc", "/proc", "/sys", "/dev", "/boot",
                                              "/usr", "/bin", "/sbin", "/lib", "/var/lib/mentat"};
  std::string q = p;
  while (q.size() > 1 && q.back() == '/') q.pop_back();
  return paths.count(q) > 0;
}

void Image(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (auto s = check.Str(v, path)) {
    if (s->find_first_of(" \t\n") != std::string::npos) check.Fail(path, "must not contain whitespace");
    d.out["image"] = *s;
  }
}

// Canonical: an absolute path on the node, or the digest of an uploaded artifact. A relative
// rootfs is the app's build output next to the manifest, which only `mt apply` can see: it
// packs and uploads it and sends the digest instead.
void Rootfs(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  auto r = check.Str(v, path);
  if (!r) return;
  if (HasDotDot(*r)) {
    check.Fail(path, "must not contain \"..\"");
  } else if (r->rfind(kArtifactDigestPrefix, 0) == 0) {
    if (!IsArtifactDigest(*r)) {
      check.Fail(path, "\"" + *r + "\" is not an artifact digest: sha256: and 64 " +
                           "lower-case hex digits");
    }
  } else if ((*r)[0] != '/') {
    check.Fail(path, "\"" + *r + "\" is relative to the manifest's folder, which the " +
                         "server cannot see: apply the file with `mt apply -f`, which " +
                         "packs and uploads the directory, or upload it yourself " +
                         "(PUT /v1/artifacts/sha256:HEX) and give rootfs: sha256:HEX");
  } else if (IsHostSystemRoot(*r)) {
    check.Fail(path, *r + " is a host system path and cannot be a workload's root");
  }
  d.out["rootfs"] = *r;
}

void Command(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (auto c = check.Str(v, path)) d.out["command"] = *c;
}

void Args(const Json& args, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json norm = Json::array();
  if (!args.is_array()) return check.Fail(path, "must be a list of strings");
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string item = path + "[" + std::to_string(i) + "]";
    if (args[i].is_string()) {
      if (auto a = check.Str(args[i], item, true)) norm.push_back(*a);
    } else if (args[i].is_number() || args[i].is_boolean()) {
      norm.push_back(args[i].dump());  // `- 9090` means the string "9090"
    } else {
      check.Fail(item, "must be a string");
    }
  }
  d.out["args"] = norm;
}

bool HasControlCharacter(const std::string& s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// A map, a list of "KEY=VALUE", of [KEY, VALUE] pairs or of {name, value}.
void Env(const Json& env, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::array();
  std::set<std::string> seen;
  auto add = [&](const std::string& item_path, const std::string& name, const Json& value) {
    if (name.empty()) return check.Fail(item_path, "environment variable name is empty");
    if (name.find('=') != std::string::npos) {
      return check.Fail(item_path, "environment variable name \"" + name + "\" may not contain '='");
    }
    if (HasControlCharacter(name)) {
      return check.Fail(item_path, "environment variable name " + Shown(name) +
                                       " may not contain control characters");
    }
    if (!seen.insert(name).second) {
      return check.Fail(item_path, "duplicate environment variable \"" + name + "\"");
    }
    std::string v;
    if (value.is_string()) {
      v = value.get<std::string>();
      if (v.find('\0') != std::string::npos) {
        return check.Fail(item_path, "value of \"" + name + "\" contains a NUL byte, which no "
                                     "environment can hold");
      }
    } else if (value.is_number() || value.is_boolean()) {
      v = value.dump();
    } else if (!value.is_null()) {
      return check.Fail(item_path, "value of \"" + name + "\" must be a string");
    }
    out.push_back({{"name", name}, {"value", v}});
  };
  if (env.is_object()) {
    for (auto it = env.begin(); it != env.end(); ++it) add(path + "." + it.key(), it.key(), it.value());
  } else if (env.is_array()) {
    for (size_t i = 0; i < env.size(); ++i) {
      const Json& e = env[i];
      std::string p = path + "[" + std::to_string(i) + "]";
      if (e.is_string()) {
        const auto& s = e.get_ref<const std::string&>();
        auto eq = s.find('=');
        if (eq == std::string::npos) {
          check.Fail(p, "expected \"KEY=VALUE\", got \"" + s + "\"");
        } else {
          add(p, s.substr(0, eq), s.substr(eq + 1));
        }
      } else if (e.is_array() && e.size() == 2 && e[0].is_string()) {
        add(p, e[0].get<std::string>(), e[1]);
      } else if (e.is_object() && e.contains("name") && e["name"].is_string() && e.size() <= 2 &&
                 (e.size() == 1 || e.contains("value"))) {
        add(p, e["name"].get<std::string>(), e.value("value", Json("")));
      } else {
        check.Fail(p, "expected \"KEY=VALUE\", a [KEY, VALUE] pair or {name, value}");
      }
    }
  } else {
    check.Fail(path, "must be a map, a list of \"KEY=VALUE\" or a list of [KEY, VALUE] pairs");
  }
  d.out["env"] = out;
}

void Cwd(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (auto c = check.AbsPath(v, path)) d.out["cwd"] = *c;
}

void User(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (v.is_number_integer()) {
    if (auto u = check.Int(v, path, 0, 4294967294LL)) d.out["user"] = std::to_string(*u);
  } else if (auto u = check.Str(v, path)) {
    static const std::regex re(
        "^([a-z_][a-z0-9_-]{0,31}|[0-9]+)(:([a-z_][a-z0-9_-]{0,31}|[0-9]+))?$");
    if (!std::regex_match(*u, re)) check.Fail(path, "must be a user name or uid, optionally :group");
    d.out["user"] = *u;
  }
}

// "SOURCE:TARGET[:ro]" -> {source, target, read_only}, or nullopt (reported).
std::optional<Json> VolumeFromString(const std::string& s, const std::string& vp,
                                     FieldChecker& check) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    size_t c = s.find(':', pos);
    parts.push_back(s.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  if (parts.size() < 2 || parts.size() > 3 ||
      (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw")) {
    check.Fail(vp, "expected \"SOURCE:TARGET\" or \"SOURCE:TARGET:ro\"");
    return std::nullopt;
  }
  auto src = check.AbsPath(parts[0], vp);
  auto dst = check.AbsPath(parts[1], vp);
  if (!src || !dst) return std::nullopt;
  return Json{{"source", *src}, {"target", *dst}, {"read_only", parts.size() == 3 && parts[2] == "ro"}};
}

std::optional<Json> VolumeFromMap(const Json& v, const std::string& vp, FieldChecker& check) {
  Json norm = {{"read_only", false}};
  check.OnlyKeys(v, vp, {"source", "target", "read_only"});
  if (!v.contains("source")) check.Fail(vp + ".source", "required");
  if (!v.contains("target")) check.Fail(vp + ".target", "required");
  std::optional<std::string> src, dst;
  if (v.contains("source")) src = check.AbsPath(v["source"], vp + ".source");
  if (v.contains("target")) dst = check.AbsPath(v["target"], vp + ".target");
  if (v.contains("read_only")) {
    if (auto ro = check.Bool(v["read_only"], vp + ".read_only")) norm["read_only"] = *ro;
  }
  if (!src || !dst) return std::nullopt;
  norm["source"] = *src;
  norm["target"] = *dst;
  return norm;
}

// [{source, target, read_only}] or "SOURCE:TARGET[:ro]".
void Volumes(const Json& vols, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::array();
  if (!vols.is_array()) {
    check.Fail(path, "must be a list of {source, target, read_only}");
    d.out["volumes"] = out;
    return;
  }
  std::set<std::string> targets;
  for (size_t i = 0; i < vols.size(); ++i) {
    const Json& v = vols[i];
    std::string vp = path + "[" + std::to_string(i) + "]";
    std::optional<Json> norm;
    if (v.is_string()) {
      norm = VolumeFromString(v.get<std::string>(), vp, check);
    } else if (v.is_object()) {
      norm = VolumeFromMap(v, vp, check);
    } else {
      check.Fail(vp, "must be {source, target, read_only}");
    }
    if (!norm) continue;
    std::string target = (*norm)["target"];
    if (target == "/") {
      check.Fail(vp, "target may not be the root directory");
    } else if (!targets.insert(target).second) {
      check.Fail(vp, "target " + target + " is mounted twice");
    } else {
      out.push_back(*norm);
    }
  }
  d.out["volumes"] = out;
}

// The merged resource pool (service_spec.cc) in canonical units.
void Resources(const Json& pool, const std::string&, SpecDraft& d, FieldChecker& check) {
  auto path = [&](const std::string& k) { return d.source[kResourcePathKey + k]; };
  auto has = [&](const char* k) { return pool.contains(k); };
  Json res = Json::object();
  if (has("memory") && has("memory_mb")) {
    check.Fail(path("memory_mb"), "conflicts with " + path("memory") + "; give memory once");
  } else if (has("memory")) {
    if (auto m = check.MemoryMb(pool["memory"], path("memory"))) res["memory_mb"] = *m;
  } else if (has("memory_mb")) {
    if (auto m = check.Int(pool["memory_mb"], path("memory_mb"), 4, int64_t{1} << 20)) res["memory_mb"] = *m;
  }
  if (has("cpu") && has("cpu_percent")) {
    check.Fail(path("cpu_percent"), "conflicts with " + path("cpu") + "; give cpu once");
  } else if (has("cpu")) {
    if (auto c = check.CpuPercent(pool["cpu"], path("cpu"))) res["cpu_percent"] = *c;
  } else if (has("cpu_percent")) {
    if (auto c = check.Int(pool["cpu_percent"], path("cpu_percent"), 1, 102400)) res["cpu_percent"] = *c;
  }
  if (has("cpu_mhz")) {
    if (auto c = check.Int(pool["cpu_mhz"], path("cpu_mhz"), 1, 1000000)) res["cpu_mhz"] = *c;
  }
  if (has("disk_mb")) {
    if (auto v = check.Int(pool["disk_mb"], path("disk_mb"), 1, int64_t{1} << 24)) res["disk_mb"] = *v;
  }
  if (has("pids") && has("max_pids")) {
    check.Fail(path("max_pids"), "conflicts with " + path("pids") + "; give pids once");
  } else {
    for (const char* k : {"pids", "max_pids"}) {
      if (!has(k)) continue;
      if (auto p = check.Int(pool[k], path(k), 1, 4194304)) res["pids"] = *p;
    }
  }
  if (has("vcpus")) {
    const std::string driver = d.out.value("driver", "");
    auto takers = DriversTaking("vcpus", /*resource=*/true);
    if (!driver.empty() && std::find(takers.begin(), takers.end(), driver) == takers.end()) {
      check.Fail(path("vcpus"), "vcpus applies to " + JoinedWithAnd(takers) + " only");
    }
    if (auto v = check.Int(pool["vcpus"], path("vcpus"), 1, 256)) res["vcpus"] = *v;
  }
  if (!res.empty()) d.out["resources"] = res;
}

void Binary(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (auto b = check.AbsPath(v, path)) d.out["binary"] = *b;
}

constexpr SpecFieldStep kSteps[] = {
    {"image", 10, Image},     {"rootfs", 30, Rootfs},     {"command", 40, Command},
    {"args", 50, Args},       {"env", 60, Env},           {"cwd", 70, Cwd},
    {"user", 80, User},       {"volumes", 110, Volumes},  {"resources", 120, Resources},
    {"binary", 210, Binary},
};
const SpecFieldRegistration kRegistered(kSteps);

}  // namespace
}  // namespace mentat
