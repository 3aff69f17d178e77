#include "cmd/mt/args.h"

#include <cctype>

namespace mentat::mt {

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
