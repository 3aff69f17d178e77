// The Service spec fields that say how it is reached, watched and rolled out, whatever the
// driver: port, ports, security, deploy, ingress, logs, checks and restart (ranks in
// driver_spec.h).
#include <algorithm>
#include <regex>
#include <set>

#include "apis/drivers/driver_spec.h"
#include "apis/service.h"

namespace mentat {
namespace {

std::string DidYouMean(const std::string& hint) {
  return hint.empty() ? "" : ", did you mean \"" + hint + "\"?";
}

void Port(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  if (auto p = check.Int(v, path, 1, 65535)) d.out["port"] = *p;
}

std::optional<int64_t> PortNumber(const std::string& s, const std::string& path,
                                  FieldChecker& check) {
  static const std::regex re("^[0-9]{1,5}$");
  if (!std::regex_match(s, re) || std::stoi(s) < 1 || std::stoi(s) > 65535) {
    check.Fail(path, "\"" + s + "\" is not a port: ports are 1-65535");
    return std::nullopt;
  }
  return std::stoi(s);
}

struct PortBinding {
  std::optional<int64_t> host, container;
  std::string proto = "tcp";
};

// "8080:80", "8080:80/udp", "80", 80, or {host, container, protocol}; nullopt when reported.
std::optional<PortBinding> ParsePort(const Json& p, const std::string& ip, FieldChecker& check) {
  PortBinding b;
  if (p.is_number_integer()) {
    b.host = b.container = check.Int(p, ip, 1, 65535);
  } else if (p.is_string()) {
    std::string s = p.get<std::string>();
    auto slash = s.find('/');
    if (slash != std::string::npos) {
      b.proto = s.substr(slash + 1);
      s = s.substr(0, slash);
    }
    auto colon = s.find(':');
    if (colon == std::string::npos) {
      b.host = b.container = PortNumber(s, ip, check);
    } else {
      if (s.find(':', colon + 1) != std::string::npos) {
        check.Fail(ip, "\"" + p.get<std::string>() +
                           "\": binding a host address is not supported; use \"HOST:CONTAINER\"");
        return std::nullopt;
      }
      b.host = PortNumber(s.substr(0, colon), ip, check);
      b.container = PortNumber(s.substr(colon + 1), ip, check);
    }
  } else if (p.is_object()) {
    check.OnlyKeys(p, ip, {"host", "container", "protocol"});
    if (p.contains("container")) {
      b.container = check.Int(p["container"], ip + ".container", 1, 65535);
    } else {
      check.Fail(ip + ".container", "required");
    }
    b.host = p.contains("host") ? check.Int(p["host"], ip + ".host", 1, 65535) : b.container;
    if (p.contains("protocol")) {
      b.proto = p["protocol"].is_string() ? p["protocol"].get<std::string>() : "?";
    }
  } else {
    check.Fail(ip, "must be \"HOST:CONTAINER\", \"HOST:CONTAINER/udp\" or a port number");
    return std::nullopt;
  }
  return b;
}

void Ports(const Json& ports, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::array();
  if (!ports.is_array()) {
    check.Fail(path, "must be a list such as [\"8080:80\"]");
    d.out["ports"] = out;
    return;
  }
  std::set<std::pair<int64_t, std::string>> host_ports;
  for (size_t i = 0; i < ports.size(); ++i) {
    std::string ip = path + "[" + std::to_string(i) + "]";
    auto b = ParsePort(ports[i], ip, check);
    if (!b) continue;
    if (b->proto != "tcp" && b->proto != "udp") {
      check.Fail(ip, "protocol must be tcp or udp, got \"" + b->proto + "\"");
      continue;
    }
    if (!b->host || !b->container) continue;
    if (!host_ports.insert({*b->host, b->proto}).second) {
      check.Fail(ip, "host port " + std::to_string(*b->host) + "/" + b->proto + " is used twice");
      continue;
    }
    out.push_back({{"host", *b->host}, {"container", *b->container}, {"protocol", b->proto}});
  }
  d.out["ports"] = out;
}

void Security(const Json& s, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::object();
  if (!s.is_object()) {
    check.Fail(path, "must be a map, e.g. {profile: sandbox}");
  } else {
    check.OnlyKeys(s, path, {"profile"});
    if (s.contains("profile")) {
      if (auto p = check.Str(s["profile"], path + ".profile")) {
        if (!IsDnsLabel(*p)) check.Fail(path + ".profile", "\"" + *p + "\" is not a profile name");
        out["profile"] = *p;
      }
    }
  }
  d.out["security"] = out;
}

void Deploy(const Json& in, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::object();
  if (!in.is_object()) {
    check.Fail(path, "must be a map, e.g. {strategy: rolling}");
    d.out["deploy"] = out;
    return;
  }
  check.OnlyKeys(in, path, {"strategy", "max_parallel", "min_healthy_time", "healthy_deadline",
                            "auto_revert"});
  std::string strategy = "rolling";
  if (in.contains("strategy")) {
    if (auto s = check.Str(in["strategy"], path + ".strategy")) {
      if (*s != "rolling" && *s != "recreate") {
        check.Fail(path + ".strategy", "must be rolling or recreate" +
                                           DidYouMean(ClosestMatch(*s, {"rolling", "recreate"})));
      }
      strategy = *s;
    }
  }
  out["strategy"] = strategy;
  auto parallel = in.contains("max_parallel")
                      ? check.Int(in["max_parallel"], path + ".max_parallel", 1, kMaxCount)
                      : std::optional<int64_t>(1);
  if (parallel) out["max_parallel"] = *parallel;
  auto min_healthy = in.contains("min_healthy_time")
                         ? check.DurationMs(in["min_healthy_time"], path + ".min_healthy_time")
                         : std::optional<int64_t>(10000);
  auto deadline = in.contains("healthy_deadline")
                      ? check.DurationMs(in["healthy_deadline"], path + ".healthy_deadline")
                      : std::optional<int64_t>(300000);
  if (min_healthy && deadline && *deadline <= *min_healthy) {
    check.Fail(path + ".healthy_deadline", "must be longer than min_healthy_time");
  }
  if (min_healthy) out["min_healthy_time"] = FormatDurationMs(*min_healthy);
  if (deadline) out["healthy_deadline"] = FormatDurationMs(*deadline);
  bool revert = false;
  if (in.contains("auto_revert")) {
    if (auto r = check.Bool(in["auto_revert"], path + ".auto_revert")) revert = *r;
  }
  out["auto_revert"] = revert;
  d.out["deploy"] = out;
}

bool DnsName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t dot = s.find('.', pos);
    std::string label = s.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    std::string lower = label;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    bool leading_wildcard = label == "*" && pos == 0;
    if (!leading_wildcard && !IsDnsLabel(lower)) return false;
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return true;
}

void Ingress(const Json& in, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::object();
  if (!in.is_object()) {
    check.Fail(path, "must be a map with host, aliases, path and tls");
    d.out["ingress"] = out;
    return;
  }
  check.OnlyKeys(in, path, {"host", "aliases", "path", "tls"});
  if (!in.contains("host")) {
    check.Fail(path + ".host", "required: the public host name");
  } else if (auto h = check.Str(in["host"], path + ".host")) {
    if (!DnsName(*h)) check.Fail(path + ".host", "\"" + *h + "\" is not a valid host name");
    out["host"] = *h;
  }
  Json aliases = Json::array();
  if (in.contains("aliases")) {
    if (!in["aliases"].is_array()) {
      check.Fail(path + ".aliases", "must be a list of host names");
    } else {
      for (size_t i = 0; i < in["aliases"].size(); ++i) {
        std::string ap = path + ".aliases[" + std::to_string(i) + "]";
        if (auto a = check.Str(in["aliases"][i], ap)) {
          if (!DnsName(*a)) check.Fail(ap, "\"" + *a + "\" is not a valid host name");
          aliases.push_back(*a);
        }
      }
    }
  }
  out["aliases"] = aliases;
  out["path"] = "/";
  if (in.contains("path")) {
    if (auto p = check.Str(in["path"], path + ".path")) {
      if ((*p)[0] != '/') check.Fail(path + ".path", "must start with /");
      out["path"] = *p;
    }
  }
  out["tls"] = false;
  if (in.contains("tls")) {
    if (auto t = check.Bool(in["tls"], path + ".tls")) out["tls"] = *t;
  }
  d.out["ingress"] = out;
}

// Log rotation: {max_file_mb, max_files}; what is absent comes from the agent's defaults.
void Logs(const Json& l, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::object();
  if (!l.is_object()) {
    check.Fail(path, "must be a map, e.g. {max_file_mb: 10, max_files: 3}");
  } else {
    check.OnlyKeys(l, path, {"max_file_mb", "max_files"});
    if (l.contains("max_file_mb")) {
      if (auto v = check.Int(l["max_file_mb"], path + ".max_file_mb", 1, 1 << 20)) out["max_file_mb"] = *v;
    }
    if (l.contains("max_files")) {
      if (auto v = check.Int(l["max_files"], path + ".max_files", 0, 100)) out["max_files"] = *v;
    }
  }
  d.out["logs"] = out;
}

// What a check of `type` runs: http's path, exec's command, tcp's and http's port.
void CheckTarget(const Json& c, const std::string& cp, const std::string& type,
                 const Json& spec_port, Json& check_out, FieldChecker& check) {
  if (type == "tcp" || type == "http") {
    if (c.contains("port")) {
      if (auto p = check.Int(c["port"], cp + ".port", 1, 65535)) check_out["port"] = *p;
    } else if (spec_port.is_number_integer()) {
      check_out["port"] = spec_port;
    } else {
      check.Fail(cp + ".port", "is required: the check has no port, and the service sets none");
    }
  } else if (c.contains("port")) {
    check.Fail(cp + ".port", "applies to tcp and http checks only");
  }
  if (type == "http") {
    std::string p = "/";
    if (c.contains("path")) {
      auto v = check.Str(c["path"], cp + ".path");
      if (v && (*v)[0] != '/') check.Fail(cp + ".path", "must start with /");
      if (v) p = *v;
    }
    check_out["path"] = p;
  } else if (c.contains("path")) {
    check.Fail(cp + ".path", "applies to http checks only");
  }
  if (type == "exec") {
    Json argv = Json::array();
    if (!c.contains("command")) {
      check.Fail(cp + ".command", "is required for an exec check, e.g. [/bin/check, --quick]");
    } else if (c["command"].is_string()) {
      if (auto v = check.Str(c["command"], cp + ".command")) argv.push_back(*v);
    } else if (c["command"].is_array() && !c["command"].empty()) {
      for (size_t j = 0; j < c["command"].size(); ++j) {
        std::string jp = cp + ".command[" + std::to_string(j) + "]";
        if (auto v = check.Str(c["command"][j], jp)) argv.push_back(*v);
      }
    } else {
      check.Fail(cp + ".command", "must be a program, or a list of a program and its arguments");
    }
    check_out["command"] = argv;
  } else if (c.contains("command")) {
    check.Fail(cp + ".command", "applies to exec checks only");
  }
}

// When and how often a check runs, every default filled in.
void CheckTiming(const Json& c, const std::string& cp, Json& out, FieldChecker& check) {
  auto interval = c.contains("interval") ? check.DurationMs(c["interval"], cp + ".interval")
                                         : std::optional<int64_t>(10000);
  auto timeout = c.contains("timeout") ? check.DurationMs(c["timeout"], cp + ".timeout")
                                       : std::optional<int64_t>(1000);
  if (interval && *interval < 100) check.Fail(cp + ".interval", "must be at least 100ms");
  if (timeout && *timeout < 10) check.Fail(cp + ".timeout", "must be at least 10ms");
  if (interval) out["interval"] = FormatDurationMs(*interval);
  if (timeout) out["timeout"] = FormatDurationMs(*timeout);
  auto ok_n = c.contains("success_threshold")
                  ? check.Int(c["success_threshold"], cp + ".success_threshold", 1, 100)
                  : std::optional<int64_t>(1);
  auto fail_n = c.contains("failure_threshold")
                    ? check.Int(c["failure_threshold"], cp + ".failure_threshold", 1, 100)
                    : std::optional<int64_t>(3);
  if (ok_n) out["success_threshold"] = *ok_n;
  if (fail_n) out["failure_threshold"] = *fail_n;
}

// Health checks: [{type: tcp|http|exec, port, path, command, interval, timeout,
// success_threshold, failure_threshold}], stored with every default filled in.
void Checks(const Json& list, const std::string& path, SpecDraft& d, FieldChecker& check) {
  Json out = Json::array();
  if (!list.is_array()) {
    check.Fail(path, "must be a list of checks, e.g. [{type: http, path: /healthz}]");
    d.out["checks"] = out;
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& c = list[i];
    std::string cp = path + "[" + std::to_string(i) + "]";
    if (!c.is_object()) {
      check.Fail(cp, "must be a map, e.g. {type: tcp}");
      continue;
    }
    check.OnlyKeys(c, cp, {"type", "port", "path", "command", "interval", "timeout",
                           "success_threshold", "failure_threshold"});
    Json one = Json::object();
    std::string type;
    if (!c.contains("type")) {
      check.Fail(cp + ".type", "is required: tcp, http or exec");
    } else if (auto t = check.Str(c["type"], cp + ".type")) {
      if (*t != "tcp" && *t != "http" && *t != "exec") {
        check.Fail(cp + ".type", "must be tcp, http or exec" +
                                     DidYouMean(ClosestMatch(*t, {"tcp", "http", "exec"})));
      }
      type = *t;
    }
    one["type"] = type;
    CheckTarget(c, cp, type, d.out.value("port", Json()), one, check);
    CheckTiming(c, cp, one, check);
    out.push_back(one);
  }
  d.out["checks"] = out;
}

void Restart(const Json& v, const std::string& path, SpecDraft& d, FieldChecker& check) {
  auto r = check.Str(v, path);
  if (r && *r != "always" && *r != "on-failure" && *r != "never") {
    check.Fail(path, "must be one of always, on-failure, never");
  } else if (r) {
    d.out["restart"] = *r;
  }
}

constexpr SpecFieldStep kSteps[] = {
    {"port", 90, Port},         {"ports", 100, Ports},   {"security", 130, Security},
    {"deploy", 140, Deploy},    {"ingress", 150, Ingress}, {"logs", 160, Logs},
    {"checks", 180, Checks},    {"restart", 190, Restart},
};
const SpecFieldRegistration kRegistered(kSteps);

}  // namespace
}  // namespace mentat
