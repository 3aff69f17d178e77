#include "apis/service.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include "apis/docker_security.h"
#include "apis/hull_manifest.h"
#include "apis/namespace_policy.h"
#include "apis/security_profile.h"

namespace mentat {
namespace {

// 1-63 of [A-Za-z0-9_.-], beginning and ending alphanumeric.
bool IsLabelName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// What a string shows of itself in an error: quoted, cut, control characters escaped.
std::string Shown(const std::string& s) {
  std::string out = "\"";
  for (char c : s.substr(0, 64)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + (s.size() > 64 ? "...\"" : "\"");
}


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

const std::vector<std::string>& KnownBases() {
  static const std::vector<std::string> b = {"node22", "python312", "java21", "static"};
  return b;
}

// Host paths no workload may use as its root filesystem.
bool IsHostSystemRoot(const std::string& p) {
  static const std::set<std::string> paths = {"/", "/etc", "/proc", "/sys", "/dev", "/boot",
                                              "/usr", "/bin", "/sbin", "/lib", "/var/lib/mentat"};
  std::string q = p;
  while (q.size() > 1 && q.back() == '/') q.pop_back();
  return paths.count(q) > 0;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms == 0) return "0s";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

class Normalizer {
 public:
  Normalizer(const SourceMap& marks, std::string name) : marks_(marks), name_(std::move(name)) {}

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

  void Unknown(const std::string& path, const std::string& key,
               const std::vector<std::string>& known) {
    std::string hint = ClosestMatch(key, known);
    Fail(path, "unknown field" + (hint.empty() ? std::string() : ", did you mean \"" + hint + "\"?"));
  }

  // ---- scalar helpers: each reports its own error and returns nullopt on failure ----

  std::optional<std::string> Str(const Json& v, const std::string& path, bool allow_empty = false) {
    if (!v.is_string()) {
      Fail(path, "must be a string");
      return std::nullopt;
    }
    if (!allow_empty && v.get_ref<const std::string&>().empty()) {
      Fail(path, "must not be empty");
      return std::nullopt;
    }
    if (v.get_ref<const std::string&>().find('\0') != std::string::npos) {
      Fail(path, "contains a NUL byte, which no argument, environment or path can hold");
      return std::nullopt;
    }
    return v.get<std::string>();
  }

  std::optional<int64_t> Int(const Json& v, const std::string& path, int64_t lo, int64_t hi) {
    if (!v.is_number_integer()) {
      Fail(path, "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
      return std::nullopt;
    }
    int64_t n = v.get<int64_t>();
    if (n < lo || n > hi) {
      Fail(path, std::to_string(n) + " is out of range: must be from " + std::to_string(lo) +
                     " to " + std::to_string(hi));
      return std::nullopt;
    }
    return n;
  }

  std::optional<bool> Bool(const Json& v, const std::string& path) {
    if (!v.is_boolean()) {
      Fail(path, "must be true or false");
      return std::nullopt;
    }
    return v.get<bool>();
  }

  std::optional<std::string> AbsPath(const Json& v, const std::string& path) {
    auto s = Str(v, path);
    if (!s) return std::nullopt;
    if ((*s)[0] != '/') {
      Fail(path, "must be an absolute path, got \"" + *s + "\"");
      return std::nullopt;
    }
    if (HasDotDot(*s)) {
      Fail(path, "must not contain \"..\"");
      return std::nullopt;
    }
    if (s->find('\0') != std::string::npos) {
      Fail(path, "must not contain NUL");
      return std::nullopt;
    }
    return s;
  }

  // Memory: "256m", "1g", "512Mi", "1Gi", "128M", "2048k"; a bare number means megabytes.
  std::optional<int64_t> MemoryMb(const Json& v, const std::string& path) {
    const int64_t kMax = int64_t{1} << 20;  // 1 TiB
    if (v.is_number_integer()) return Int(v, path, 4, kMax);
    if (!v.is_string()) {
      Fail(path, "must be a quantity such as 256m, 1g or 512Mi");
      return std::nullopt;
    }
    static const std::regex re("^\\s*([0-9]+(\\.[0-9]+)?)\\s*([kKmMgGtT]?)([iI]?)([bB]?)\\s*$");
    std::smatch m;
    std::string s = v.get<std::string>();
    if (!std::regex_match(s, m, re)) {
      Fail(path, "\"" + s + "\" is not a memory quantity; use e.g. 256m, 1g or 512Mi");
      return std::nullopt;
    }
    double n = std::stod(m[1]);
    char unit = m[3].str().empty() ? 'm' : static_cast<char>(tolower(m[3].str()[0]));
    double mb = unit == 'k' ? n / 1024 : unit == 'm' ? n : unit == 'g' ? n * 1024 : n * 1024 * 1024;
    if (mb < 4 || mb > static_cast<double>(kMax)) {
      Fail(path, "\"" + s + "\" is out of range: memory must be from 4m to 1t");
      return std::nullopt;
    }
    return static_cast<int64_t>(std::llround(mb));
  }

  // CPU as a percentage of one core: "50%", cores (0.5, 2, "1.5"), or millicores ("500m").
  std::optional<int64_t> CpuPercent(const Json& v, const std::string& path) {
    const double kMaxPercent = 100.0 * 1024;
    double percent = -1;
    if (v.is_number()) {
      percent = v.get<double>() * 100;  // cores
    } else if (v.is_string()) {
      std::string s = v.get<std::string>();
      static const std::regex re("^\\s*([0-9]+(\\.[0-9]+)?)\\s*(%|m)?\\s*$");
      std::smatch m;
      if (std::regex_match(s, m, re)) {
        double n = std::stod(m[1]);
        percent = m[3] == "%" ? n : m[3] == "m" ? n / 10 : n * 100;
      } else {
        Fail(path, "\"" + s + "\" is not a CPU quantity; use e.g. 50%, 0.5 (cores) or 500m");
        return std::nullopt;
      }
    } else {
      Fail(path, "must be a CPU quantity such as 50%, 0.5 (cores) or 500m");
      return std::nullopt;
    }
    if (percent < 1 || percent > kMaxPercent) {
      Fail(path, "CPU must be from 1% of a core to 1024 cores");
      return std::nullopt;
    }
    return static_cast<int64_t>(std::llround(percent));
  }

  // Durations: "10s", "500ms", "5m", "1h", or a number of seconds. Canonical: a string.
  std::optional<int64_t> DurationMs(const Json& v, const std::string& path) {
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>() * 1000;
    if (v.is_string()) {
      static const std::regex re("^([0-9]+)(ms|s|m|h)$");
      std::smatch m;
      std::string s = v.get<std::string>();
      if (std::regex_match(s, m, re)) {
        int64_t n = std::stoll(m[1]);
        const std::string u = m[2];
        int64_t mult = u == "ms" ? 1 : u == "s" ? 1000 : u == "m" ? 60000 : 3600000;
        if (n > 0 && n > (int64_t{1} << 40) / mult) {
          Fail(path, "duration too long");
          return std::nullopt;
        }
        return n * mult;
      }
    }
    Fail(path, "must be a duration such as 500ms, 10s, 5m or 1h");
    return std::nullopt;
  }

  // ---- structured fields ----

  Json Env(const Json& env, const std::string& path) {
    Json out = Json::array();
    std::set<std::string> seen;
    auto add = [&](const std::string& item_path, const std::string& name, const Json& value) {
      if (name.empty()) return Fail(item_path, "environment variable name is empty");
      if (name.find('=') != std::string::npos) {
        return Fail(item_path, "environment variable name \"" + name + "\" may not contain '='");
      }
      if (std::any_of(name.begin(), name.end(), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
          })) {
        return Fail(item_path, "environment variable name " + Shown(name) +
                                   " may not contain control characters");
      }
      if (!seen.insert(name).second) {
        return Fail(item_path, "duplicate environment variable \"" + name + "\"");
      }
      std::string v;
      if (value.is_string()) {
        v = value.get<std::string>();
        if (v.find('\0') != std::string::npos) {
          return Fail(item_path, "value of \"" + name + "\" contains a NUL byte, which no "
                                 "environment can hold");
        }
      } else if (value.is_number() || value.is_boolean()) {
        v = value.dump();
      } else if (!value.is_null()) {
        return Fail(item_path, "value of \"" + name + "\" must be a string");
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

  std::optional<int64_t> PortNumber(const std::string& s, const std::string& path) {
    static const std::regex re("^[0-9]{1,5}$");
    if (!std::regex_match(s, re) || std::stoi(s) < 1 || std::stoi(s) > 65535) {
      Fail(path, "\"" + s + "\" is not a port: ports are 1-65535");
      return std::nullopt;
    }
    return std::stoi(s);
  }

  // "8080:80", "8080:80/udp", "80", 80, or {host, container, protocol}.
  Json Ports(const Json& ports, const std::string& path) {
    Json out = Json::array();
    if (!ports.is_array()) {
      Fail(path, "must be a list such as [\"8080:80\"]");
      return out;
    }
    std::set<std::pair<int64_t, std::string>> host_ports;
    for (size_t i = 0; i < ports.size(); ++i) {
      const Json& p = ports[i];
      std::string ip = path + "[" + std::to_string(i) + "]";
      std::optional<int64_t> host, container;
      std::string proto = "tcp";
      if (p.is_number_integer()) {
        host = container = Int(p, ip, 1, 65535);
      } else if (p.is_string()) {
        std::string s = p.get<std::string>();
        auto slash = s.find('/');
        if (slash != std::string::npos) {
          proto = s.substr(slash + 1);
          s = s.substr(0, slash);
        }
        auto colon = s.find(':');
        if (colon == std::string::npos) {
          host = container = PortNumber(s, ip);
        } else {
          if (s.find(':', colon + 1) != std::string::npos) {
            Fail(ip, "\"" + p.get<std::string>() +
                         "\": binding a host address is not supported; use \"HOST:CONTAINER\"");
            continue;
          }
          host = PortNumber(s.substr(0, colon), ip);
          container = PortNumber(s.substr(colon + 1), ip);
        }
      } else if (p.is_object()) {
        for (auto it = p.begin(); it != p.end(); ++it) {
          if (it.key() != "host" && it.key() != "container" && it.key() != "protocol") {
            Unknown(ip + "." + it.key(), it.key(), {"host", "container", "protocol"});
          }
        }
        if (p.contains("container")) container = Int(p["container"], ip + ".container", 1, 65535);
        else Fail(ip + ".container", "required");
        host = p.contains("host") ? Int(p["host"], ip + ".host", 1, 65535) : container;
        if (p.contains("protocol")) proto = p["protocol"].is_string() ? p["protocol"].get<std::string>() : "?";
      } else {
        Fail(ip, "must be \"HOST:CONTAINER\", \"HOST:CONTAINER/udp\" or a port number");
        continue;
      }
      if (proto != "tcp" && proto != "udp") {
        Fail(ip, "protocol must be tcp or udp, got \"" + proto + "\"");
        continue;
      }
      if (!host || !container) continue;
      if (!host_ports.insert({*host, proto}).second) {
        Fail(ip, "host port " + std::to_string(*host) + "/" + proto + " is used twice");
        continue;
      }
      out.push_back({{"host", *host}, {"container", *container}, {"protocol", proto}});
    }
    return out;
  }

  // [{source, target, read_only}] or "SOURCE:TARGET[:ro]".
  Json Volumes(const Json& vols, const std::string& path) {
    Json out = Json::array();
    if (!vols.is_array()) {
      Fail(path, "must be a list of {source, target, read_only}");
      return out;
    }
    std::set<std::string> targets;
    for (size_t i = 0; i < vols.size(); ++i) {
      const Json& v = vols[i];
      std::string vp = path + "[" + std::to_string(i) + "]";
      Json norm = {{"read_only", false}};
      if (v.is_string()) {
        std::string s = v.get<std::string>();
        std::vector<std::string> parts;
        size_t pos = 0;
        while (true) {
          size_t c = s.find(':', pos);
          parts.push_back(s.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
          if (c == std::string::npos) break;
          pos = c + 1;
        }
        if (parts.size() < 2 || parts.size() > 3 || (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw")) {
          Fail(vp, "expected \"SOURCE:TARGET\" or \"SOURCE:TARGET:ro\"");
          continue;
        }
        auto src = AbsPath(parts[0], vp);
        auto dst = AbsPath(parts[1], vp);
        if (!src || !dst) continue;
        norm["source"] = *src;
        norm["target"] = *dst;
        norm["read_only"] = parts.size() == 3 && parts[2] == "ro";
      } else if (v.is_object()) {
        for (auto it = v.begin(); it != v.end(); ++it) {
          if (it.key() != "source" && it.key() != "target" && it.key() != "read_only") {
            Unknown(vp + "." + it.key(), it.key(), {"source", "target", "read_only"});
          }
        }
        if (!v.contains("source")) Fail(vp + ".source", "required");
        if (!v.contains("target")) Fail(vp + ".target", "required");
        std::optional<std::string> src, dst;
        if (v.contains("source")) src = AbsPath(v["source"], vp + ".source");
        if (v.contains("target")) dst = AbsPath(v["target"], vp + ".target");
        if (v.contains("read_only")) {
          if (auto ro = Bool(v["read_only"], vp + ".read_only")) norm["read_only"] = *ro;
        }
        if (!src || !dst) continue;
        norm["source"] = *src;
        norm["target"] = *dst;
      } else {
        Fail(vp, "must be {source, target, read_only}");
        continue;
      }
      std::string target = norm["target"];
      if (target == "/") {
        Fail(vp, "target may not be the root directory");
        continue;
      }
      if (!targets.insert(target).second) {
        Fail(vp, "target " + target + " is mounted twice");
        continue;
      }
      out.push_back(norm);
    }
    return out;
  }

  Json Scale(const Json& s, const std::string& path) {
    Json out = Json::object();
    if (!s.is_object()) {
      Fail(path, "must be a map with min, max, metric, scale_up_at and scale_down_at");
      return out;
    }
    static const std::vector<std::string> keys = {"min", "max", "metric", "scale_up_at",
                                                  "scale_down_at"};
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        Unknown(path + "." + it.key(), it.key(), keys);
      }
    }
    auto min = s.contains("min") ? Int(s["min"], path + ".min", 0, kMaxCount) : std::optional<int64_t>(1);
    auto max = s.contains("max") ? Int(s["max"], path + ".max", 0, kMaxCount) : min;
    if (min && max && *min > *max) {
      Fail(path + ".max", "max (" + std::to_string(*max) + ") is below min (" + std::to_string(*min) + ")");
    }
    std::string metric = "cpu";
    if (s.contains("metric")) {
      if (auto m = Str(s["metric"], path + ".metric")) {
        if (*m != "cpu" && *m != "memory") {
          Fail(path + ".metric", "must be cpu or memory, got \"" + *m + "\"");
        }
        metric = *m;
      }
    }
    auto up = s.contains("scale_up_at") ? Int(s["scale_up_at"], path + ".scale_up_at", 1, 100)
                                        : std::optional<int64_t>(70);
    auto down = s.contains("scale_down_at")
                    ? Int(s["scale_down_at"], path + ".scale_down_at", 0, 99)
                    : std::optional<int64_t>(20);
    if (up && down && *down >= *up) {
      Fail(path + ".scale_down_at", "scale_down_at (" + std::to_string(*down) +
                                        ") must be below scale_up_at (" + std::to_string(*up) + ")");
    }
    if (min) out["min"] = *min;
    if (max) out["max"] = *max;
    out["metric"] = metric;
    if (up) out["scale_up_at"] = *up;
    if (down) out["scale_down_at"] = *down;
    return out;
  }

  // Health checks: [{type: tcp|http|exec, port, path, command, interval, timeout,
  // success_threshold, failure_threshold}], stored with every default filled in.
  Json Checks(const Json& list, const std::string& path, const Json& spec_port) {
    Json out = Json::array();
    if (!list.is_array()) {
      Fail(path, "must be a list of checks, e.g. [{type: http, path: /healthz}]");
      return out;
    }
    static const std::vector<std::string> keys = {"type",     "port",    "path",
                                                  "command",  "interval", "timeout",
                                                  "success_threshold", "failure_threshold"};
    for (size_t i = 0; i < list.size(); ++i) {
      const Json& c = list[i];
      std::string cp = path + "[" + std::to_string(i) + "]";
      if (!c.is_object()) {
        Fail(cp, "must be a map, e.g. {type: tcp}");
        continue;
      }
      for (auto it = c.begin(); it != c.end(); ++it) {
        if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) Unknown(cp + "." + it.key(), it.key(), keys);
      }
      Json check = Json::object();
      std::string type;
      if (!c.contains("type")) {
        Fail(cp + ".type", "is required: tcp, http or exec");
      } else if (auto t = Str(c["type"], cp + ".type")) {
        if (*t != "tcp" && *t != "http" && *t != "exec") {
          std::string hint = ClosestMatch(*t, {"tcp", "http", "exec"});
          Fail(cp + ".type", "must be tcp, http or exec" + (hint.empty() ? "" : ", did you mean \"" + hint + "\"?"));
        }
        type = *t;
      }
      check["type"] = type;
      if (type == "tcp" || type == "http") {
        if (c.contains("port")) {
          if (auto p = Int(c["port"], cp + ".port", 1, 65535)) check["port"] = *p;
        } else if (spec_port.is_number_integer()) {
          check["port"] = spec_port;
        } else {
          Fail(cp + ".port", "is required: the check has no port, and the service sets none");
        }
      } else if (c.contains("port")) {
        Fail(cp + ".port", "applies to tcp and http checks only");
      }
      if (type == "http") {
        std::string p = "/";
        if (c.contains("path")) {
          auto v = Str(c["path"], cp + ".path");
          if (v && (*v)[0] != '/') Fail(cp + ".path", "must start with /");
          if (v) p = *v;
        }
        check["path"] = p;
      } else if (c.contains("path")) {
        Fail(cp + ".path", "applies to http checks only");
      }
      if (type == "exec") {
        Json argv = Json::array();
        if (!c.contains("command")) {
          Fail(cp + ".command", "is required for an exec check, e.g. [/bin/check, --quick]");
        } else if (c["command"].is_string()) {
          if (auto v = Str(c["command"], cp + ".command")) argv.push_back(*v);
        } else if (c["command"].is_array() && !c["command"].empty()) {
          for (size_t j = 0; j < c["command"].size(); ++j) {
            if (auto v = Str(c["command"][j], cp + ".command[" + std::to_string(j) + "]")) argv.push_back(*v);
          }
        } else {
          Fail(cp + ".command", "must be a program, or a list of a program and its arguments");
        }
        check["command"] = argv;
      } else if (c.contains("command")) {
        Fail(cp + ".command", "applies to exec checks only");
      }
      auto interval = c.contains("interval") ? DurationMs(c["interval"], cp + ".interval") : std::optional<int64_t>(10000);
      auto timeout = c.contains("timeout") ? DurationMs(c["timeout"], cp + ".timeout") : std::optional<int64_t>(1000);
      if (interval && *interval < 100) Fail(cp + ".interval", "must be at least 100ms");
      if (timeout && *timeout < 10) Fail(cp + ".timeout", "must be at least 10ms");
      if (interval) check["interval"] = FormatDurationMs(*interval);
      if (timeout) check["timeout"] = FormatDurationMs(*timeout);
      auto ok_n = c.contains("success_threshold") ? Int(c["success_threshold"], cp + ".success_threshold", 1, 100)
                                                  : std::optional<int64_t>(1);
      auto fail_n = c.contains("failure_threshold") ? Int(c["failure_threshold"], cp + ".failure_threshold", 1, 100)
                                                    : std::optional<int64_t>(3);
      if (ok_n) check["success_threshold"] = *ok_n;
      if (fail_n) check["failure_threshold"] = *fail_n;
      out.push_back(check);
    }
    return out;
  }

  // Log rotation: {max_file_mb, max_files}; what is absent comes from the agent's defaults.
  Json Logs(const Json& l, const std::string& path) {
    Json out = Json::object();
    if (!l.is_object()) {
      Fail(path, "must be a map, e.g. {max_file_mb: 10, max_files: 3}");
      return out;
    }
    static const std::vector<std::string> keys = {"max_file_mb", "max_files"};
    for (auto it = l.begin(); it != l.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        Unknown(path + "." + it.key(), it.key(), keys);
      }
    }
    if (l.contains("max_file_mb")) {
      if (auto v = Int(l["max_file_mb"], path + ".max_file_mb", 1, 1 << 20)) out["max_file_mb"] = *v;
    }
    if (l.contains("max_files")) {
      if (auto v = Int(l["max_files"], path + ".max_files", 0, 100)) out["max_files"] = *v;
    }
    return out;
  }

  // Docker's security settings, `docker: {privileged, cap_add, ...}` (apis/docker_security.h).
  // Capability names are canonical without CAP_ and upper case.
  Json Docker(const Json& d, const std::string& path) {
    Json out = Json::object();
    if (!d.is_object()) {
      Fail(path, "must be a map, e.g. {read_only_rootfs: true, cap_drop: [ALL]}");
      return out;
    }
    static const std::vector<std::string> keys = {"privileged", "cap_add",  "cap_drop",
                                                  "read_only_rootfs", "no_new_privileges",
                                                  "seccomp", "apparmor", "network_mode",
                                                  "pid_mode", "ipc_mode"};
    for (auto it = d.begin(); it != d.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        Unknown(path + "." + it.key(), it.key(), keys);
      }
    }
    for (const char* k : {"privileged", "read_only_rootfs", "no_new_privileges"}) {
      if (d.contains(k)) {
        if (auto b = Bool(d[k], path + "." + k)) out[k] = *b;
      }
    }
    for (const char* k : {"cap_add", "cap_drop"}) {
      if (!d.contains(k)) continue;
      std::string kp = path + "." + k;
      if (!d[k].is_array()) {
        Fail(kp, "must be a list of capability names, e.g. [NET_BIND_SERVICE]");
        continue;
      }
      Json caps = Json::array();
      for (size_t i = 0; i < d[k].size(); ++i) {
        std::string ip = kp + "[" + std::to_string(i) + "]";
        auto c = Str(d[k][i], ip);
        if (!c) continue;
        std::string name = *c;
        std::transform(name.begin(), name.end(), name.begin(), ::toupper);
        if (name.rfind("CAP_", 0) == 0) name = name.substr(4);
        if (!IsCapabilityName(name)) {
          Fail(ip, "unknown capability \"" + *c + "\"");
          continue;
        }
        caps.push_back(name);
      }
      out[k] = caps;
    }
    auto one_of = [&](const char* k, const std::vector<std::string>& allowed) {
      if (!d.contains(k)) return;
      auto s = Str(d[k], path + "." + k, /*allow_empty=*/true);
      if (!s) return;
      if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + (a.empty() ? "\"\"" : a);
        Fail(path + "." + k, "must be one of " + list + ", got \"" + *s + "\"");
        return;
      }
      out[k] = *s;
    };
    one_of("seccomp", {"default", "strict", "unconfined"});
    one_of("network_mode", {"bridge", "host", "none"});
    one_of("pid_mode", {"", "host"});
    one_of("ipc_mode", {"", "private", "shareable", "host", "none"});
    if (d.contains("apparmor")) {
      if (auto a = Str(d["apparmor"], path + ".apparmor")) {
        static const std::regex re("^[A-Za-z0-9_.-]{1,64}$");
        if (!std::regex_match(*a, re)) {
          Fail(path + ".apparmor", "must be default, unconfined or an AppArmor profile name");
        } else {
          out["apparmor"] = *a;
        }
      }
    }
    return out;
  }

  Json Deploy(const Json& d, const std::string& path) {
    Json out = Json::object();
    if (!d.is_object()) {
      Fail(path, "must be a map, e.g. {strategy: rolling}");
      return out;
    }
    static const std::vector<std::string> keys = {"strategy", "max_parallel", "min_healthy_time",
                                                  "healthy_deadline", "auto_revert"};
    for (auto it = d.begin(); it != d.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        Unknown(path + "." + it.key(), it.key(), keys);
      }
    }
    std::string strategy = "rolling";
    if (d.contains("strategy")) {
      if (auto s = Str(d["strategy"], path + ".strategy")) {
        if (*s != "rolling" && *s != "recreate") {
          std::string hint = ClosestMatch(*s, {"rolling", "recreate"});
          Fail(path + ".strategy", "must be rolling or recreate" +
                                       (hint.empty() ? "" : ", did you mean \"" + hint + "\"?"));
        }
        strategy = *s;
      }
    }
    out["strategy"] = strategy;
    auto parallel = d.contains("max_parallel") ? Int(d["max_parallel"], path + ".max_parallel", 1, kMaxCount)
                                               : std::optional<int64_t>(1);
    if (parallel) out["max_parallel"] = *parallel;
    auto min_healthy = d.contains("min_healthy_time")
                           ? DurationMs(d["min_healthy_time"], path + ".min_healthy_time")
                           : std::optional<int64_t>(10000);
    auto deadline = d.contains("healthy_deadline")
                        ? DurationMs(d["healthy_deadline"], path + ".healthy_deadline")
                        : std::optional<int64_t>(300000);
    if (min_healthy && deadline && *deadline <= *min_healthy) {
      Fail(path + ".healthy_deadline", "must be longer than min_healthy_time");
    }
    if (min_healthy) out["min_healthy_time"] = FormatDurationMs(*min_healthy);
    if (deadline) out["healthy_deadline"] = FormatDurationMs(*deadline);
    bool revert = false;
    if (d.contains("auto_revert")) {
      if (auto r = Bool(d["auto_revert"], path + ".auto_revert")) revert = *r;
    }
    out["auto_revert"] = revert;
    return out;
  }

  bool DnsName(const std::string& s) {
    if (s.empty() || s.size() > 253) return false;
    size_t pos = 0;
    while (pos <= s.size()) {
      size_t dot = s.find('.', pos);
      std::string label = s.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
      std::string lower = label;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (label == "*" && pos == 0) {
        // a leading wildcard label
      } else if (!IsDnsLabel(lower)) {
        return false;
      }
      if (dot == std::string::npos) break;
      pos = dot + 1;
    }
    return true;
  }

  Json Ingress(const Json& in, const std::string& path) {
    Json out = Json::object();
    if (!in.is_object()) {
      Fail(path, "must be a map with host, aliases, path and tls");
      return out;
    }
    static const std::vector<std::string> keys = {"host", "aliases", "path", "tls"};
    for (auto it = in.begin(); it != in.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        Unknown(path + "." + it.key(), it.key(), keys);
      }
    }
    if (!in.contains("host")) {
      Fail(path + ".host", "required: the public host name");
    } else if (auto h = Str(in["host"], path + ".host")) {
      if (!DnsName(*h)) Fail(path + ".host", "\"" + *h + "\" is not a valid host name");
      out["host"] = *h;
    }
    Json aliases = Json::array();
    if (in.contains("aliases")) {
      if (!in["aliases"].is_array()) {
        Fail(path + ".aliases", "must be a list of host names");
      } else {
        for (size_t i = 0; i < in["aliases"].size(); ++i) {
          std::string ap = path + ".aliases[" + std::to_string(i) + "]";
          if (auto a = Str(in["aliases"][i], ap)) {
            if (!DnsName(*a)) Fail(ap, "\"" + *a + "\" is not a valid host name");
            aliases.push_back(*a);
          }
        }
      }
    }
    out["aliases"] = aliases;
    out["path"] = "/";
    if (in.contains("path")) {
      if (auto p = Str(in["path"], path + ".path")) {
        if ((*p)[0] != '/') Fail(path + ".path", "must start with /");
        out["path"] = *p;
      }
    }
    out["tls"] = false;
    if (in.contains("tls")) {
      if (auto t = Bool(in["tls"], path + ".tls")) out["tls"] = *t;
    }
    return out;
  }

  Json Security(const Json& s, const std::string& path) {
    Json out = Json::object();
    if (!s.is_object()) {
      Fail(path, "must be a map, e.g. {profile: sandbox}");
      return out;
    }
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (it.key() != "profile") Unknown(path + "." + it.key(), it.key(), {"profile"});
    }
    if (s.contains("profile")) {
      if (auto p = Str(s["profile"], path + ".profile")) {
        if (!IsDnsLabel(*p)) Fail(path + ".profile", "\"" + *p + "\" is not a profile name");
        out["profile"] = *p;
      }
    }
    return out;
  }

  // `in` is a flat spec (seed form or canonical spec). `prefix` is its path in the input.
  Json NormalizeSpec(const Json& in, const std::string& prefix) {
    Json out = Json::object();
    if (!in.is_object()) {
      Fail(prefix.empty() ? "spec" : prefix.substr(0, prefix.size() - 1), "must be a map");
      return out;
    }
    // config.* holds the same fields one level down (seed 000). Merge, refusing conflicts.
    Json fields = Json::object();
    std::map<std::string, std::string> src;  // field -> input path
    auto take = [&](const Json& from, const std::string& base) {
      for (auto it = from.begin(); it != from.end(); ++it) {
        if (base == prefix && it.key() == "config") continue;
        std::string path = base + it.key();
        if (fields.contains(it.key())) {
          if (fields[it.key()] != it.value()) {
            Fail(path, "conflicts with " + src[it.key()] + ", which sets a different value");
          }
          continue;
        }
        fields[it.key()] = it.value();
        src[it.key()] = path;
      }
    };
    take(in, prefix);
    if (in.contains("config")) {
      if (!in["config"].is_object()) {
        Fail(prefix + "config", "must be a map");
      } else {
        take(in["config"], prefix + "config.");
      }
    }
    // Resource keys may also sit under `resources`; they join the same pool.
    Json resources = Json::object();
    std::map<std::string, std::string> rsrc;
    if (fields.contains("resources")) {
      const Json& r = fields["resources"];
      if (!r.is_object()) {
        Fail(src["resources"], "must be a map with memory, cpu, cpu_mhz, memory_mb, disk_mb");
      } else {
        for (auto it = r.begin(); it != r.end(); ++it) {
          const auto& rf = ResourceFields();
          if (std::find(rf.begin(), rf.end(), it.key()) == rf.end()) {
            Unknown(src["resources"] + "." + it.key(), it.key(), rf);
            continue;
          }
          resources[it.key()] = it.value();
          rsrc[it.key()] = src["resources"] + "." + it.key();
        }
      }
    }
    for (const auto& k : ResourceFields()) {
      if (!fields.contains(k)) continue;
      if (resources.contains(k) && resources[k] != fields[k]) {
        Fail(src[k], "conflicts with " + rsrc[k] + ", which sets a different value");
        continue;
      }
      resources[k] = fields[k];
      rsrc[k] = src[k];
    }
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      const auto& known = SpecFields();
      if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
        Unknown(src[it.key()], it.key(), known);
      }
    }

    // driver
    std::string driver;
    if (!fields.contains("driver")) {
      Fail(prefix + "driver", "required: one of exec, sandbox, hull, docker, firecracker, qemu");
    } else if (auto d = Str(fields["driver"], src["driver"])) {
      const auto& drivers = KnownDrivers();
      if (std::find(drivers.begin(), drivers.end(), *d) == drivers.end()) {
        std::string hint = ClosestMatch(*d, drivers);
        Fail(src["driver"], "unknown driver \"" + *d + "\"" +
                                (hint.empty() ? ", expected one of exec, sandbox, hull, docker, "
                                                "firecracker, qemu"
                                              : ", did you mean \"" + hint + "\"?"));
      } else {
        driver = *d;
        out["driver"] = driver;
      }
    }
    bool vm = driver == "firecracker" || driver == "qemu";

    // count / replicas / scale.min: one desired count.
    std::optional<int64_t> count;
    std::string count_src;
    for (const char* k : {"count", "replicas"}) {
      if (!fields.contains(k)) continue;
      auto n = Int(fields[k], src[k], 0, kMaxCount);
      if (!n) continue;
      if (count && *count != *n) {
        Fail(src[k], "conflicts with " + count_src + " (" + std::to_string(*count) + ")");
        continue;
      }
      count = n;
      count_src = src[k];
    }
    if (fields.contains("scale")) {
      Json scale = Scale(fields["scale"], src["scale"]);
      if (scale.contains("min") && scale.contains("max")) {
        int64_t lo = scale["min"], hi = scale["max"];
        if (count && (*count < lo || *count > hi)) {
          Fail(count_src, std::to_string(*count) + " is outside scale.min..scale.max (" +
                              std::to_string(lo) + ".." + std::to_string(hi) + ")");
        }
        if (!count) count = lo;
      }
      out["scale"] = scale;
    }
    out["count"] = count.value_or(1);

    // What runs.
    if (fields.contains("image")) {
      if (auto s = Str(fields["image"], src["image"])) {
        if (s->find_first_of(" \t\n") != std::string::npos) {
          Fail(src["image"], "must not contain whitespace");
        }
        out["image"] = *s;
      }
    }
    if (fields.contains("base")) {
      if (auto b = Str(fields["base"], src["base"])) {
        const auto& bases = KnownBases();
        if (std::find(bases.begin(), bases.end(), *b) == bases.end()) {
          std::string hint = ClosestMatch(*b, bases);
          Fail(src["base"], "unknown base \"" + *b + "\"" +
                                (hint.empty() ? ", expected one of node22, python312, java21, static"
                                              : ", did you mean \"" + hint + "\"?"));
        }
        out["base"] = *b;
      }
    }
    if (fields.contains("rootfs")) {
      if (auto r = Str(fields["rootfs"], src["rootfs"])) {
        // Canonical: an absolute path on the node, or the digest of an uploaded artifact. A
        // relative rootfs is the app's build output next to the manifest, which only `mt apply`
        // can see: it packs and uploads it and sends the digest instead.
        if (HasDotDot(*r)) {
          Fail(src["rootfs"], "must not contain \"..\"");
        } else if (r->rfind(kArtifactDigestPrefix, 0) == 0) {
          if (!IsArtifactDigest(*r)) {
            Fail(src["rootfs"], "\"" + *r + "\" is not an artifact digest: sha256: and 64 " +
                                    "lower-case hex digits");
          }
        } else if ((*r)[0] != '/') {
          Fail(src["rootfs"], "\"" + *r + "\" is relative to the manifest's folder, which the " +
                                  "server cannot see: apply the file with `mt apply -f`, which " +
                                  "packs and uploads the directory, or upload it yourself " +
                                  "(PUT /v1/artifacts/sha256:HEX) and give rootfs: sha256:HEX");
        } else if (IsHostSystemRoot(*r)) {
          Fail(src["rootfs"], *r + " is a host system path and cannot be a workload's root");
        }
        out["rootfs"] = *r;
      }
    }
    if (fields.contains("command")) {
      if (auto c = Str(fields["command"], src["command"])) out["command"] = *c;
    }
    if (fields.contains("args")) {
      const Json& args = fields["args"];
      Json norm = Json::array();
      if (!args.is_array()) {
        Fail(src["args"], "must be a list of strings");
      } else {
        for (size_t i = 0; i < args.size(); ++i) {
          if (args[i].is_string()) {
            if (auto a = Str(args[i], src["args"] + "[" + std::to_string(i) + "]", true)) norm.push_back(*a);
          } else if (args[i].is_number() || args[i].is_boolean()) {
            norm.push_back(args[i].dump());  // `- 9090` means the string "9090"
          } else {
            Fail(src["args"] + "[" + std::to_string(i) + "]", "must be a string");
          }
        }
        out["args"] = norm;
      }
    }
    if (fields.contains("env")) out["env"] = Env(fields["env"], src["env"]);
    if (fields.contains("cwd")) {
      if (auto c = AbsPath(fields["cwd"], src["cwd"])) out["cwd"] = *c;
    }
    if (fields.contains("user")) {
      if (fields["user"].is_number_integer()) {
        if (auto u = Int(fields["user"], src["user"], 0, 4294967294LL)) out["user"] = std::to_string(*u);
      } else if (auto u = Str(fields["user"], src["user"])) {
        static const std::regex re("^([a-z_][a-z0-9_-]{0,31}|[0-9]+)(:([a-z_][a-z0-9_-]{0,31}|[0-9]+))?$");
        if (!std::regex_match(*u, re)) Fail(src["user"], "must be a user name or uid, optionally :group");
        out["user"] = *u;
      }
    }
    if (fields.contains("port")) {
      if (auto p = Int(fields["port"], src["port"], 1, 65535)) out["port"] = *p;
    }
    if (fields.contains("ports")) out["ports"] = Ports(fields["ports"], src["ports"]);
    if (fields.contains("volumes")) out["volumes"] = Volumes(fields["volumes"], src["volumes"]);

    // Resources, in canonical units.
    Json res = Json::object();
    if (resources.contains("memory") && resources.contains("memory_mb")) {
      Fail(rsrc["memory_mb"], "conflicts with " + rsrc["memory"] + "; give memory once");
    } else if (resources.contains("memory")) {
      if (auto m = MemoryMb(resources["memory"], rsrc["memory"])) res["memory_mb"] = *m;
    } else if (resources.contains("memory_mb")) {
      if (auto m = Int(resources["memory_mb"], rsrc["memory_mb"], 4, int64_t{1} << 20)) res["memory_mb"] = *m;
    }
    if (resources.contains("cpu") && resources.contains("cpu_percent")) {
      Fail(rsrc["cpu_percent"], "conflicts with " + rsrc["cpu"] + "; give cpu once");
    } else if (resources.contains("cpu")) {
      if (auto c = CpuPercent(resources["cpu"], rsrc["cpu"])) res["cpu_percent"] = *c;
    } else if (resources.contains("cpu_percent")) {
      if (auto c = Int(resources["cpu_percent"], rsrc["cpu_percent"], 1, 102400)) res["cpu_percent"] = *c;
    }
    if (resources.contains("cpu_mhz")) {
      if (auto c = Int(resources["cpu_mhz"], rsrc["cpu_mhz"], 1, 1000000)) res["cpu_mhz"] = *c;
    }
    if (resources.contains("disk_mb")) {
      if (auto d = Int(resources["disk_mb"], rsrc["disk_mb"], 1, int64_t{1} << 24)) res["disk_mb"] = *d;
    }
    if (resources.contains("pids") && resources.contains("max_pids")) {
      Fail(rsrc["max_pids"], "conflicts with " + rsrc["pids"] + "; give pids once");
    } else {
      for (const char* k : {"pids", "max_pids"}) {
        if (resources.contains(k)) {
          if (auto p = Int(resources[k], rsrc[k], 1, 4194304)) res["pids"] = *p;
        }
      }
    }
    if (resources.contains("vcpus")) {
      if (!vm && !driver.empty()) Fail(rsrc["vcpus"], "vcpus applies to firecracker and qemu only");
      if (auto v = Int(resources["vcpus"], rsrc["vcpus"], 1, 256)) res["vcpus"] = *v;
    }
    if (!res.empty()) out["resources"] = res;

    if (fields.contains("security")) out["security"] = Security(fields["security"], src["security"]);
    if (fields.contains("deploy")) out["deploy"] = Deploy(fields["deploy"], src["deploy"]);
    if (fields.contains("ingress")) out["ingress"] = Ingress(fields["ingress"], src["ingress"]);
    if (fields.contains("logs")) out["logs"] = Logs(fields["logs"], src["logs"]);
    if (fields.contains("docker")) out["docker"] = Docker(fields["docker"], src["docker"]);
    if (fields.contains("checks")) {
      out["checks"] = Checks(fields["checks"], src["checks"], out.value("port", Json()));
    }
    out["restart"] = "always";
    if (fields.contains("restart")) {
      auto r = Str(fields["restart"], src["restart"]);
      if (r && *r != "always" && *r != "on-failure" && *r != "never") {
        Fail(src["restart"], "must be one of always, on-failure, never");
      } else if (r) {
        out["restart"] = *r;
      }
    }
    if (fields.contains("manifest")) {
      const Json& m = fields["manifest"];
      if (m.is_object()) {
        // An inline hull manifest: validated by the same type the hull binary reads.
        SourceMap sub;
        std::string base = src["manifest"] + ".";
        for (const auto& [path, mark] : marks_) {
          if (path.rfind(base, 0) == 0) sub[path.substr(base.size())] = mark;
        }
        auto hm = HullManifest::FromJson(m, sub);
        if (!hm) {
          for (const auto& d : hm.error().details()) {
            errors_.push_back({base + d.field, d.line, d.column, d.message});
          }
        } else {
          out["manifest"] = hm->ToJson();
        }
      } else if (auto p = AbsPath(m, src["manifest"])) {
        out["manifest"] = *p;
      }
    }
    if (fields.contains("binary")) {
      if (auto b = AbsPath(fields["binary"], src["binary"])) out["binary"] = *b;
    }
    if (fields.contains("hull")) {
      // The hull driver's own settings for the manifest it generates (seed 003's names).
      const Json& h = fields["hull"];
      if (!h.is_object()) {
        Fail(src["hull"], "must be an object: {profile, network, hostname}");
      } else {
        Json settings = Json::object();
        for (auto it = h.begin(); it != h.end(); ++it) {
          const std::string path = src["hull"] + "." + it.key();
          auto one_of = [&](const std::vector<std::string>& allowed) {
            auto v = Str(*it, path);
            if (!v) return;
            if (std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
              std::string list;
              for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
              Fail(path, "must be one of " + list);
            } else {
              settings[it.key()] = *v;
            }
          };
          if (it.key() == "profile") {
            one_of(HullProfiles());
          } else if (it.key() == "network") {
            one_of(HullNetworkModes());
          } else if (it.key() == "hostname") {
            if (auto v = Str(*it, path)) settings["hostname"] = *v;
          } else {
            Unknown(path, it.key(), {"profile", "network", "hostname"});
          }
        }
        out["hull"] = settings;
      }
    }
    if (fields.contains("adopt")) {
      const Json& a = fields["adopt"];
      if (!a.is_object() || !a.contains("container") || !a["container"].is_string() || a.size() != 1) {
        Fail(src["adopt"], "must be {container: NAME}");
      } else {
        out["adopt"] = a;
      }
    }

    // Fields that belong to other drivers are mistakes worth naming.
    auto only_for = [&](const char* field, const std::set<std::string>& drivers, const char* which) {
      if (fields.contains(field) && !driver.empty() && !drivers.count(driver)) {
        Fail(src[field], std::string(field) + " applies to " + which + " only, not " + driver);
      }
    };
    only_for("image", {"docker", "firecracker", "qemu"}, "docker, firecracker and qemu");
    only_for("base", {"sandbox"}, "sandbox");
    only_for("manifest", {"hull"}, "hull");
    only_for("binary", {"hull", "firecracker", "qemu"}, "hull, firecracker and qemu");
    only_for("adopt", {"docker"}, "docker");
    only_for("docker", {"docker"}, "docker");
    only_for("hull", {"hull"}, "hull");

    // What each driver needs.
    if (driver == "exec" && !out.contains("command") && !fields.contains("command")) {
      Fail(prefix + "command", "required for driver exec");
    }
    if (driver == "docker" && !fields.contains("image")) {
      Fail(prefix + "image", "required for driver docker");
    }
    if (driver == "sandbox") {
      if (!fields.contains("base") && !fields.contains("rootfs")) {
        Fail(prefix + "rootfs", "driver sandbox needs base, rootfs or both");
      }
      if (!fields.contains("command")) Fail(prefix + "command", "required for driver sandbox");
    }
    if (driver == "hull" && !fields.contains("manifest") &&
        !(fields.contains("rootfs") && fields.contains("command"))) {
      Fail(prefix + "manifest",
           "driver hull needs a manifest, or rootfs and command to generate one from");
    }
    if (vm && !fields.contains("image") && !fields.contains("rootfs") && !fields.contains("binary")) {
      // The seed's VM services name no image: the service binary is installed on each node
      // under /opt/mentat/bin (seed 002's layout).
      out["image"] = "/opt/mentat/bin/" + name_;
    }
    return out;
  }

 private:
  const SourceMap& marks_;
  std::string name_;
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

Json NormalizeMetadata(const Json& input, bool flat, bool namespaced, Normalizer& n) {
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
    static const std::vector<std::string> keys = {
        "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation",
        "creationTimestamp", "finalizers", "deletionTimestamp"};
    for (auto it = meta.begin(); it != meta.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        n.Unknown(base + it.key(), it.key(), keys);
      }
    }
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
  return meta;
}

Error Invalid(const std::string& kind, const Json& meta, std::vector<FieldError> errors) {
  std::string name = meta.is_object() && meta.contains("name") && meta["name"].is_string()
                         ? meta["name"].get<std::string>()
                         : "";
  return Error(Code::kInvalidArgument,
               kind + (name.empty() ? "" : " \"" + name + "\"") + " is invalid", std::move(errors));
}

}  // namespace

const std::vector<std::string>& KnownDrivers() {
  static const std::vector<std::string> d = {"exec", "sandbox", "hull", "docker", "firecracker",
                                             "qemu"};
  return d;
}

bool HasDotDot(const std::string& p) {
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t slash = p.find('/', pos);
    std::string part = p.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (part == "..") return true;
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return false;
}

bool IsArtifactDigest(const std::string& s) {
  const size_t prefix = sizeof(kArtifactDigestPrefix) - 1;
  if (s.size() != prefix + 64 || s.compare(0, prefix, kArtifactDigestPrefix) != 0) return false;
  return std::all_of(s.begin() + prefix, s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string LabelKeyProblem(const std::string& key) {
  const auto slash = key.find('/');
  const std::string name = slash == std::string::npos ? key : key.substr(slash + 1);
  if (slash != std::string::npos) {
    const std::string prefix = key.substr(0, slash);
    bool ok = !prefix.empty() && prefix.size() <= 253;
    for (size_t at = 0; ok && at <= prefix.size();) {
      size_t dot = prefix.find('.', at);
      if (dot == std::string::npos) dot = prefix.size();
      ok = IsDnsLabel(prefix.substr(at, dot - at));
      at = dot + 1;
    }
    if (!ok) {
      return "key " + Shown(key) + ": the prefix before '/' must be a DNS subdomain (lowercase "
             "letters, digits, '-' and '.', at most 253)";
    }
  }
  if (!IsLabelName(name)) {
    return "key " + Shown(key) + ": the name must be 1-63 letters, digits, '-', '_' or '.', "
           "starting and ending with a letter or digit";
  }
  return "";
}

std::string LabelValueProblem(const std::string& value) {
  if (value.empty() || IsLabelName(value)) return "";
  return "value " + Shown(value) + " must be empty, or 1-63 letters, digits, '-', '_' or '.', "
         "starting and ending with a letter or digit";
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
  int best_d = std::min<int>(3, static_cast<int>(word.size()) / 2 + 1);
  for (const auto& c : candidates) {
    int d = EditDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

bool IsProfilesDocument(const Json& document) {
  return document.is_object() && !document.contains("kind") && document.size() == 1 &&
         document.contains("security") && document["security"].is_object() &&
         document["security"].contains("profiles");
}

void DefaultNamespace(Json& document, const std::string& ns) {
  if (ns.empty() || !document.is_object() || IsProfilesDocument(document)) return;
  const bool canonical = document.contains("metadata") || document.contains("spec");
  if (!canonical && !document.contains("namespace")) document["namespace"] = ns;
  if (canonical && document["metadata"].is_object() && !document["metadata"].contains("namespace")) {
    document["metadata"]["namespace"] = ns;
  }
}

bool IsBareHullManifest(const Json& document) {
  return document.is_object() && !document.contains("kind") && !document.contains("driver") &&
         !document.contains("config") && document.contains("rootfs") && document.contains("argv");
}

Result<std::vector<Json>> NormalizeDocument(const Json& input, const SourceMap& marks,
                                           const std::string& default_name) {
  if (!input.is_object()) {
    Mark m = FindMark(marks, "");
    return MakeError(Code::kInvalidArgument, "invalid manifest",
                     {{"", m.line, m.column, "a manifest must be a map"}});
  }
  // The seed-001 form: `security: {profiles: {NAME: {...}}}` declares SecurityProfiles.
  if (IsProfilesDocument(input)) return NormalizeProfilesDocument(input, marks);
  // A bare hull manifest (seed 003) runs as a one-replica Service on the hull driver. A
  // namespace (DefaultNamespace's) is the Service's, not the manifest's.
  if (IsBareHullManifest(input)) {
    Json manifest = input;
    manifest.erase("namespace");
    Json svc = {{"name", input.value("name", Json(default_name))},
                {"driver", "hull"},
                {"manifest", manifest}};
    if (input.contains("namespace")) svc["namespace"] = input["namespace"];
    SourceMap shifted;
    for (const auto& [path, mark] : marks) shifted[path.empty() ? "manifest" : "manifest." + path] = mark;
    if (marks.count("name")) shifted["name"] = marks.at("name");
    MT_ASSIGN_OR_RETURN(Json obj, NormalizeObject(svc, shifted));
    return std::vector<Json>{obj};
  }
  bool flat = !input.contains("metadata") && !input.contains("spec");
  bool named = flat ? input.contains("name")
                    : input.contains("metadata") &&
                          (!input["metadata"].is_object() || input["metadata"].contains("name"));
  std::vector<Json> out;
  if (default_name.empty() || named) {
    MT_ASSIGN_OR_RETURN(Json obj, NormalizeObject(input, marks));
    out.push_back(std::move(obj));
    return out;
  }
  // A manifest may leave out its name (seed 000's config snippets): the caller supplies one,
  // from the URL or the file name.
  Json in = input;
  if (flat) {
    in["name"] = default_name;
  } else {
    if (!in.contains("metadata")) in["metadata"] = Json::object();
    in["metadata"]["name"] = default_name;
  }
  MT_ASSIGN_OR_RETURN(Json obj, NormalizeObject(in, marks));
  out.push_back(std::move(obj));
  return out;
}

namespace {
constexpr const char* kServiceWideFields[] = {"count", "scale", "deploy"};
}  // namespace

Json TaskTemplate(const Json& spec) {
  Json t = spec;
  for (const char* f : kServiceWideFields) t.erase(f);
  return t;
}

Json WithTaskTemplate(const Json& spec, const Json& task_template) {
  Json out = task_template;
  for (const char* f : kServiceWideFields) {
    if (spec.contains(f)) out[f] = spec[f];
  }
  return out;
}

Result<Json> NormalizeObject(const Json& input, const SourceMap& marks) {
  if (!input.is_object()) {
    Mark m = FindMark(marks, "");
    return MakeError(Code::kInvalidArgument, "invalid manifest",
                     {{"", m.line, m.column, "a manifest must be a map"}});
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
  auto info = *KindByName(kind);
  bool flat = !input.contains("metadata") && !input.contains("spec");
  std::string name;
  if (flat && input.contains("name") && input["name"].is_string()) name = input["name"];
  if (!flat && input.contains("metadata") && input["metadata"].is_object()) {
    name = input["metadata"].value("name", Json("")).is_string() ? input["metadata"].value("name", "") : "";
  }
  Normalizer n(marks, name);
  if (input.contains("apiVersion") && input["apiVersion"] != std::string(kApiVersion)) {
    n.Fail("apiVersion", "must be \"" + std::string(kApiVersion) + "\"");
  }
  if (kind == "SecurityProfile") {
    if (!n.ok()) return std::unexpected(Invalid(kind, Json::object(), n.TakeErrors()));
    return NormalizeSecurityProfile(input, marks);
  }
  Json out = {{"apiVersion", std::string(kApiVersion)}, {"kind", kind}};
  out["metadata"] = NormalizeMetadata(input, flat, info.namespaced, n);

  if (kind == "Service") {
    if (flat) {
      Json spec = input;
      for (const char* k : {"apiVersion", "kind", "name", "namespace", "labels", "annotations"}) {
        spec.erase(k);
      }
      out["spec"] = n.NormalizeSpec(spec, "");
    } else {
      static const std::vector<std::string> top = {"apiVersion", "kind", "metadata", "spec",
                                                   "status"};
      for (auto it = input.begin(); it != input.end(); ++it) {
        if (std::find(top.begin(), top.end(), it.key()) == top.end()) n.Unknown(it.key(), it.key(), top);
      }
      out["spec"] = n.NormalizeSpec(input.value("spec", Json::object()), "spec.");
    }
  } else if (kind == kNamespacePolicyKind) {
    if (flat) n.Fail("metadata", "required for kind " + kind);
    out["spec"] = NormalizeNamespacePolicySpec(
        input.value("spec", Json::object()),
        [&](const std::string& path, const std::string& msg) { n.Fail(path, msg); });
  } else {
    // Allocations and Nodes are written by the control plane, in canonical form.
    if (flat) n.Fail("metadata", "required for kind " + kind);
    out["spec"] = input.value("spec", Json::object());
    if (!out["spec"].is_object()) n.Fail("spec", "must be a map");
  }
  if (input.contains("status") && input["status"].is_object()) out["status"] = input["status"];
  if (!n.ok()) return std::unexpected(Invalid(kind, out["metadata"], n.TakeErrors()));
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
  static const std::set<std::string> typed = {"driver", "count", "command", "args",
                                              "env",    "cwd",   "port",    "restart"};
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (!typed.count(it.key())) s.extra[it.key()] = it.value();
  }
  return s;
}

}  // namespace mentat
