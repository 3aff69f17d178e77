#include "cmd/mt/args.h"

#include <cctype>
#include <cmath>

namespace mentat::mt {

Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  auto bad = [&] {
    return InvalidArgument("invalid duration \"" + text + "\": use e.g. 90s, 2m, 1h or 1m30s");
  };
  if (text.empty()) return bad();
  double total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (i == start) return bad();
    double value;
    try {
      value = std::stod(text.substr(start, i - start));
    } catch (...) {
      return bad();
    }
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string unit = text.substr(unit_start, i - unit_start);
    if (unit.empty() && unit_start == text.size() && start == 0) unit = "s";
    double scale = unit == "ms"  ? 1
                   : unit == "s" ? 1000
                   : unit == "m" ? 60000
                   : unit == "h" ? 3600000
                                 : -1;
    if (scale < 0) return bad();
    total_ms += value * scale;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(total_ms)));
}

std::string FormatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms % 1000 != 0) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%.1fs", ms / 1000.0);
    return buf;
  }
  int64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h", s %= 3600;
  if (s >= 60) out += std::to_string(s / 60) + "m", s %= 60;
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  return out;
}

Result<KindInfo> ParseKind(const std::string& text) {
  auto kind = KindByName(text);
  if (!kind) {
    return InvalidArgument("unknown resource type \"" + text +
                           "\"; try services, allocations, nodes or securityprofiles");
  }
  return *kind;
}

Result<std::vector<ObjectRef>> ParseRefs(const std::vector<std::string>& args,
                                         bool names_optional) {
  std::vector<ObjectRef> refs;
  if (args.empty()) return InvalidArgument("name a resource: KIND NAME... or KIND/NAME...");
  if (args[0].find('/') == std::string::npos) {
    MT_ASSIGN_OR_RETURN(auto kind, ParseKind(args[0]));
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i].find('/') != std::string::npos) {
        return InvalidArgument("\"" + args[i] +
                               "\": after a kind, give plain names, or use "
                               "KIND/NAME for every argument");
      }
      refs.push_back({kind, args[i]});
    }
    if (refs.empty()) {
      if (!names_optional)
        return InvalidArgument("name the " + std::string(kind.kind) + ": " +
                               std::string(kind.plural) + " NAME, or " +
                               Lower(std::string(kind.kind)) + "/NAME");
      refs.push_back({kind, ""});
    }
    return refs;
  }
  for (const auto& a : args) {
    auto slash = a.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == a.size()) {
      return InvalidArgument("\"" + a + "\": expected KIND/NAME, e.g. service/web");
    }
    MT_ASSIGN_OR_RETURN(auto kind, ParseKind(a.substr(0, slash)));
    refs.push_back({kind, a.substr(slash + 1)});
  }
  return refs;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string RefString(const KindInfo& kind, const std::string& name) {
  return Lower(std::string(kind.kind)) + "/" + name;
}

std::string RefString(const Json& obj) { return Lower(obj.value("kind", "")) + "/" + NameOf(obj); }

}  // namespace mentat::mt
