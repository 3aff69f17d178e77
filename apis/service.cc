#include "apis/service.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "apis/field_checker.h"
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


}  // namespace

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

std::string HostLabel(std::string host) {
  host = host.substr(0, host.find('.'));
  for (char& c : host) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
  }
  host = host.substr(0, 63);
  const auto first = host.find_first_not_of('-'), last = host.find_last_not_of('-');
  return first == std::string::npos ? "localhost" : host.substr(first, last - first + 1);
}

std::string ThisHostLabel() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return HostLabel(buf);
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
