#include "apis/service.h"

#include <algorithm>
#include <set>
#include <tuple>

namespace mentat {
namespace {

// Fields accepted in a Service spec but not normalized yet; they pass through unchanged.
const std::vector<std::string>& PassthroughFields() {
  static const std::vector<std::string> f = {
      "image",    "base",     "rootfs",   "resources", "volumes", "ports",  "security",
      "deploy",   "ingress",  "health",   "memory_mb", "vcpus",   "cpu_percent",
      "max_pids", "manifest", "binary",   "adopt",     "user",
  };
  return f;
}

const std::vector<std::string>& TypedFields() {
  static const std::vector<std::string> f = {"driver", "count",   "replicas", "scale", "command",
                                             "args",   "env",     "cwd",      "port",  "restart"};
  return f;
}

class Normalizer {
 public:
  explicit Normalizer(const SourceMap& marks) : marks_(marks) {}

  void Fail(const std::string& path, const std::string& message) {
    Mark m = FindMark(marks_, path);
    errors_.push_back({path, m.line, m.column, message});
  }
  bool ok() const { return errors_.empty(); }
  // Errors in source order, as a reader goes through the file.
  std::vector<FieldError> TakeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const FieldError& a, const FieldError& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    return std::move(errors_);
  }

  // `in` is a flat spec (seed form or canonical spec). `prefix` is its path in the input.
  Json NormalizeSpec(const Json& in, const std::string& prefix) {
    Json out = Json::object();
    if (!in.is_object()) {
      Fail(prefix.empty() ? "spec" : prefix.substr(0, prefix.size() - 1), "must be a map");
      return out;
    }
    // config.* is the same set of fields, one level down (seed 000). Merge, refusing conflicts.
    Json fields = Json::object();
    std::map<std::string, std::string> source;  // field -> input path
    for (auto it = in.begin(); it != in.end(); ++it) {
      if (it.key() == "config") continue;
      fields[it.key()] = it.value();
      source[it.key()] = prefix + it.key();
    }
    if (in.contains("config")) {
      const Json& config = in["config"];
      if (!config.is_object()) {
        Fail(prefix + "config", "must be a map");
      } else {
        for (auto it = config.begin(); it != config.end(); ++it) {
          std::string path = prefix + "config." + it.key();
          if (fields.contains(it.key()) && fields[it.key()] != it.value()) {
            Fail(path, "conflicts with " + source[it.key()] + ", which sets a different value");
            continue;
          }
          fields[it.key()] = it.value();
          source[it.key()] = path;
        }
      }
    }
    std::vector<std::string> known = TypedFields();
    known.insert(known.end(), PassthroughFields().begin(), PassthroughFields().end());
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
      std::string hint = ClosestMatch(it.key(), known);
      Fail(source[it.key()],
           "unknown field" + (hint.empty() ? std::string() : ", did you mean \"" + hint + "\"?"));
    }

    // driver
    if (fields.contains("driver")) {
      const Json& d = fields["driver"];
      const auto& drivers = KnownDrivers();
      if (!d.is_string()) {
        Fail(source["driver"], "must be a string");
      } else if (std::find(drivers.begin(), drivers.end(), d.get<std::string>()) ==
                 drivers.end()) {
        std::string hint = ClosestMatch(d.get<std::string>(), drivers);
        Fail(source["driver"], "unknown driver \"" + d.get<std::string>() + "\"" +
                                   (hint.empty() ? ", expected one of exec, sandbox, hull, "
                                                   "docker, firecracker, qemu"
                                                 : ", did you mean \"" + hint + "\"?"));
      } else {
        out["driver"] = d;
      }
    } else {
      Fail(prefix + "driver", "required: one of exec, sandbox, hull, docker, firecracker, qemu");
    }

    // count / replicas / scale.min: one desired count.
    std::vector<std::pair<std::string, Json>> counts;
    if (fields.contains("count")) counts.emplace_back(source["count"], fields["count"]);
    if (fields.contains("replicas")) counts.emplace_back(source["replicas"], fields["replicas"]);
    if (fields.contains("scale")) {
      const Json& scale = fields["scale"];
      if (!scale.is_object()) {
        Fail(source["scale"], "must be a map");
      } else {
        if (scale.contains("min")) counts.emplace_back(source["scale"] + ".min", scale["min"]);
        out["scale"] = scale;
      }
    }
    int count = 1;
    for (size_t i = 0; i < counts.size(); ++i) {
      const auto& [path, v] = counts[i];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxCount) {
        Fail(path, "must be a whole number from 0 to " + std::to_string(kMaxCount));
        continue;
      }
      if (i > 0 && v.get<int>() != count) {
        Fail(path, "conflicts with " + counts[0].first + " (" + std::to_string(count) + ")");
        continue;
      }
      count = v.get<int>();
    }
    out["count"] = count;

    if (fields.contains("command")) {
      if (!fields["command"].is_string() || fields["command"].get<std::string>().empty()) {
        Fail(source["command"], "must be a non-empty string");
      } else {
        out["command"] = fields["command"];
      }
    }
    if (fields.contains("args")) {
      const Json& args = fields["args"];
      Json norm = Json::array();
      if (!args.is_array()) {
        Fail(source["args"], "must be a list of strings");
      } else {
        for (size_t i = 0; i < args.size(); ++i) {
          if (args[i].is_string()) {
            norm.push_back(args[i]);
          } else if (args[i].is_number() || args[i].is_boolean()) {
            norm.push_back(args[i].dump());  // `- 9090` means the string "9090"
          } else {
            Fail(source["args"] + "[" + std::to_string(i) + "]", "must be a string");
          }
        }
        out["args"] = norm;
      }
    }
    if (fields.contains("env")) out["env"] = NormalizeEnv(fields["env"], source["env"]);
    if (fields.contains("cwd")) {
      if (!fields["cwd"].is_string() || fields["cwd"].get<std::string>().empty() ||
          fields["cwd"].get<std::string>()[0] != '/') {
        Fail(source["cwd"], "must be an absolute path");
      } else {
        out["cwd"] = fields["cwd"];
      }
    }
    if (fields.contains("port")) {
      const Json& p = fields["port"];
      if (!p.is_number_integer() || p.get<int64_t>() < 1 || p.get<int64_t>() > 65535) {
        Fail(source["port"], "must be a port number from 1 to 65535");
      } else {
        out["port"] = p;
      }
    }
    if (fields.contains("restart")) {
      const Json& r = fields["restart"];
      if (!r.is_string() || (r != "always" && r != "on-failure" && r != "never")) {
        Fail(source["restart"], "must be one of always, on-failure, never");
      } else {
        out["restart"] = r;
      }
    }
    if (!out.contains("restart")) out["restart"] = "always";
    for (const auto& f : PassthroughFields()) {
      if (fields.contains(f)) out[f] = fields[f];
    }
    if (out.contains("driver") && out["driver"] == "exec" && !out.contains("command") &&
        !fields.contains("command")) {
      Fail(prefix + "command", "required for driver exec");
    }
    return out;
  }

  // env as a map, a list of [K, V] pairs, a list of "K=V", or the canonical [{name, value}].
  Json NormalizeEnv(const Json& env, const std::string& path) {
    Json out = Json::array();
    std::set<std::string> seen;
    auto add = [&](const std::string& item_path, const std::string& name, const Json& value) {
      if (name.empty()) {
        Fail(item_path, "environment variable name is empty");
        return;
      }
      if (name.find('=') != std::string::npos || name.find('\0') != std::string::npos) {
        Fail(item_path, "environment variable name \"" + name + "\" may not contain '='");
        return;
      }
      if (!seen.insert(name).second) {
        Fail(item_path, "duplicate environment variable \"" + name + "\"");
        return;
      }
      std::string v;
      if (value.is_string()) {
        v = value.get<std::string>();
      } else if (value.is_number() || value.is_boolean()) {
        v = value.dump();
      } else if (value.is_null()) {
        v = "";
      } else {
        Fail(item_path, "value of \"" + name + "\" must be a string");
        return;
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
            Fail(p, "expected \"KEY=VALUE\", got \"" + s + "\"");
          } else {
            add(p, s.substr(0, eq), s.substr(eq + 1));
          }
        } else if (e.is_array() && e.size() == 2 && e[0].is_string()) {
          add(p, e[0].get<std::string>(), e[1]);
        } else if (e.is_object() && e.contains("name") && e["name"].is_string() &&
                   e.size() <= 2 && (e.size() == 1 || e.contains("value"))) {
          add(p, e["name"].get<std::string>(), e.value("value", Json("")));
        } else {
          Fail(p, "expected \"KEY=VALUE\", a [KEY, VALUE] pair or {name, value}");
        }
      }
    } else {
      Fail(path, "must be a map, a list of \"KEY=VALUE\" or a list of [KEY, VALUE] pairs");
    }
    return out;
  }

 private:
  const SourceMap& marks_;
  std::vector<FieldError> errors_;
};

int EditDistance(const std::string& a, const std::string& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

Result<Json> NormalizeMetadata(const Json& input, bool flat, bool namespaced,
                               Normalizer& n) {
  Json meta = Json::object();
  if (flat) {
    if (input.contains("name")) meta["name"] = input["name"];
    if (input.contains("namespace")) meta["namespace"] = input["namespace"];
    if (input.contains("labels")) meta["labels"] = input["labels"];
    if (input.contains("annotations")) meta["annotations"] = input["annotations"];
  } else if (input.contains("metadata")) {
    if (!input["metadata"].is_object()) {
      n.Fail("metadata", "must be a map");
      return meta;
    }
    meta = input["metadata"];
  }
  const std::string base = flat ? "" : "metadata.";
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
  for (const char* field : {"labels", "annotations"}) {
    if (!meta.contains(field)) continue;
    const Json& m = meta[field];
    if (!m.is_object()) {
      n.Fail(base + field, "must be a map of strings");
      continue;
    }
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it.value().is_string()) n.Fail(base + field + "." + it.key(), "must be a string");
    }
  }
  return meta;
}

}  // namespace

const std::vector<std::string>& KnownDrivers() {
  static const std::vector<std::string> d = {"exec", "sandbox", "hull", "docker", "firecracker",
                                             "qemu"};
  return d;
}

bool IsDnsLabel(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return name.front() != '-' && name.back() != '-';
}

std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  int best_d = 3;
  for (const auto& c : candidates) {
    int d = EditDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

Result<Json> NormalizeObject(const Json& input, const SourceMap& marks) {
  Normalizer n(marks);
  if (!input.is_object()) {
    return MakeError(Code::kInvalidArgument, "invalid manifest",
                     {{"", FindMark(marks, "").line, 0, "a manifest must be a map"}});
  }
  std::string kind = "Service";
  if (input.contains("kind")) {
    auto info = input["kind"].is_string() ? KindByName(input["kind"].get<std::string>())
                                          : std::nullopt;
    if (!info || input["kind"].get<std::string>() != info->kind) {
      std::vector<std::string> kinds;
      for (const auto& k : Kinds()) kinds.emplace_back(k.kind);
      std::string hint =
          input["kind"].is_string() ? ClosestMatch(input["kind"].get<std::string>(), kinds) : "";
      Mark m = FindMark(marks, "kind");
      return MakeError(Code::kInvalidArgument, "invalid manifest",
                       {{"kind", m.line, m.column,
                         "unknown kind" + (hint.empty() ? "" : ", did you mean \"" + hint + "\"?")}});
    }
    kind = std::string(info->kind);
  }
  if (input.contains("apiVersion") && input["apiVersion"] != std::string(kApiVersion)) {
    n.Fail("apiVersion", "must be \"" + std::string(kApiVersion) + "\"");
  }
  auto info = *KindByName(kind);
  // The canonical form has metadata/spec; the seed form is flat.
  bool flat = !input.contains("metadata") && !input.contains("spec");
  Json out = {{"apiVersion", std::string(kApiVersion)}, {"kind", kind}};
  MT_ASSIGN_OR_RETURN(out["metadata"], NormalizeMetadata(input, flat, info.namespaced, n));

  if (kind == "Service") {
    if (flat) {
      Json spec = input;
      for (const char* k : {"apiVersion", "kind", "name", "namespace", "labels", "annotations"}) {
        spec.erase(k);
      }
      out["spec"] = n.NormalizeSpec(spec, "");
    } else {
      for (auto it = input.begin(); it != input.end(); ++it) {
        static const std::set<std::string> top = {"apiVersion", "kind", "metadata", "spec",
                                                  "status"};
        if (!top.count(it.key())) {
          std::string hint = ClosestMatch(it.key(), {top.begin(), top.end()});
          n.Fail(it.key(), "unknown field" +
                               (hint.empty() ? std::string() : ", did you mean \"" + hint + "\"?"));
        }
      }
      out["spec"] = n.NormalizeSpec(input.value("spec", Json::object()), "spec.");
    }
  } else {
    // Other kinds are written by the control plane in canonical form.
    if (flat) n.Fail("metadata", "required for kind " + kind);
    out["spec"] = input.value("spec", Json::object());
    if (!out["spec"].is_object()) n.Fail("spec", "must be a map");
  }
  if (input.contains("status") && input["status"].is_object()) out["status"] = input["status"];
  if (!n.ok()) {
    auto errors = n.TakeErrors();
    std::string name = out["metadata"].value("name", Json("")).is_string()
                           ? out["metadata"].value("name", "")
                           : "";
    std::string what = kind + (name.empty() ? "" : " \"" + name + "\"") + " is invalid";
    return MakeError(Code::kInvalidArgument, what, std::move(errors));
  }
  return out;
}

Result<Json> NormalizeManifestText(const std::string& text) {
  MT_ASSIGN_OR_RETURN(Document doc, DecodeYaml(text));
  return NormalizeObject(doc.value, doc.marks);
}

Result<ServiceSpec> ServiceSpec::FromJson(const Json& spec) {
  ServiceSpec s;
  if (!spec.is_object()) return InvalidArgument("spec must be a map");
  s.driver = spec.value("driver", "");
  s.count = spec.value("count", 1);
  s.command = spec.value("command", "");
  if (spec.contains("args")) s.args = spec["args"].get<std::vector<std::string>>();
  if (spec.contains("env")) {
    for (const auto& e : spec["env"]) s.env.push_back({e.value("name", ""), e.value("value", "")});
  }
  s.cwd = spec.value("cwd", "");
  s.port = spec.value("port", 0);
  s.restart = spec.value("restart", "always");
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    const auto& typed = TypedFields();
    if (std::find(typed.begin(), typed.end(), it.key()) == typed.end()) s.extra[it.key()] = it.value();
  }
  return s;
}

Json ServiceSpec::ToJson() const {
  Json j = extra;
  j["driver"] = driver;
  j["count"] = count;
  if (!command.empty()) j["command"] = command;
  if (!args.empty()) j["args"] = args;
  if (!env.empty()) {
    Json e = Json::array();
    for (const auto& v : env) e.push_back({{"name", v.name}, {"value", v.value}});
    j["env"] = e;
  }
  if (!cwd.empty()) j["cwd"] = cwd;
  if (port) j["port"] = port;
  j["restart"] = restart;
  return j;
}

}  // namespace mentat
