#include "cmd/mt/columns.h"

#include <algorithm>

#include "cmd/mt/args.h"

namespace mentat::mt {

const Json* FindCondition(const Json& obj, const std::string& type) {
  // Pointers into `obj` itself: value() would return copies.
  if (!obj.is_object()) return nullptr;
  auto st = obj.find("status");
  if (st == obj.end() || !st->is_object()) return nullptr;
  auto it = st->find("conditions");
  if (it == st->end() || !it->is_array()) return nullptr;
  for (const auto& c : *it) {
    if (c.is_object() && Lower(c.value("type", "")) == Lower(type)) return &c;
  }
  return nullptr;
}

bool StatusIsCurrent(const Json& obj) {
  const Json& st = obj.value("status", Json::object());
  if (!st.contains("observedGeneration")) {
    const KindInfo* kind = KindNamed(obj.value("kind", ""));
    return !(kind && kind->observes_generation);
  }
  int64_t generation = obj.value("metadata", Json::object()).value("generation", int64_t{0});
  return st.value("observedGeneration", int64_t{0}) >= generation;
}

std::string WhyNotReady(const Json& obj) {
  if (!StatusIsCurrent(obj)) {
    return "the controller has not yet seen generation " +
           std::to_string(obj.value("metadata", Json::object()).value("generation", 0));
  }
  const Json& st = obj.value("status", Json::object());
  const Json conditions = st.value("conditions", Json::array());
  std::vector<std::string> parts, messages;
  // Degraded says why first; Ready usually repeats its message, which is then left out.
  for (const char* wanted : {"Degraded", "Ready"}) {
    for (const auto& c : conditions) {
      if (!c.is_object() || c.value("type", "") != wanted) continue;
      std::string status = c.value("status", "");
      bool bad = std::string(wanted) == "Degraded" ? status == "True" : status != "True";
      if (!bad) continue;
      std::string part = std::string(wanted) + "=" + status + " (" + c.value("reason", "") + ")";
      std::string message = c.value("message", "");
      if (!message.empty() &&
          std::find(messages.begin(), messages.end(), message) == messages.end()) {
        part += ": " + message;
        messages.push_back(message);
      }
      parts.push_back(part);
    }
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  if (out.empty()) out = st.value("message", "");
  return out;
}

}  // namespace mentat::mt
