// Command-line values that several commands share: kinds with their aliases, and object references in either kubectl form: "service/web" or "services web".
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/kind_registry.h"
#include "apis/object.h"

namespace mentat::mt {

// "svc", "service", "Services", ... Errors: kInvalidArgument naming the known kinds.
Result<KindInfo> ParseKind(const std::string& text);

struct ObjectRef {
  KindInfo kind;
  std::string name;
};

// {"service/web", "node/vm"} or {"services", "web", "api"}. With `names_optional`, a bare
// kind gives one reference with an empty name (every object of the kind).
Result<std::vector<ObjectRef>> ParseRefs(const std::vector<std::string>& args, bool names_optional);

std::string Lower(std::string s);
// "service/web": how kubectl names an object in messages.
std::string RefString(const KindInfo& kind, const std::string& name);
std::string RefString(const Json& obj);

}  // namespace mentat::mt
