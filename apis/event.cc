#include "apis/event.h"

#include <cstdio>

namespace mentat {

std::string EventName(const Json& involved, const std::string& reason, const std::string& message) {
  // FNV-1a, 32 bits: stable across runs and hosts (std::hash is neither).
  uint32_t h = 2166136261u;
  for (const std::string& part : {involved.value("kind", std::string()), reason, message}) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 16777619u;
    }
    h ^= 0xff;
    h *= 16777619u;
  }
  char suffix[10];
  snprintf(suffix, sizeof(suffix), "-%08x", h);
  std::string name = NameOf(involved).substr(0, 63 - 9);
  while (!name.empty() && name.back() == '-') name.pop_back();
  return name + suffix;
}

Json MakeEvent(const Json& involved, const std::string& type, const std::string& reason,
               const std::string& message, const std::string& source) {
  std::string now = NowRfc3339();
  Json ref = {{"kind", involved.value("kind", "")}, {"name", NameOf(involved)}};
  if (!NamespaceOf(involved).empty()) ref["namespace"] = NamespaceOf(involved);
  const Json& meta = involved.value("metadata", Json::object());
  if (meta.contains("uid")) ref["uid"] = meta["uid"];
  std::string ns = NamespaceOf(involved).empty() ? std::string(kDefaultNamespace) : NamespaceOf(involved);
  return {{"apiVersion", std::string(kApiVersion)},
          {"kind", "Event"},
          {"metadata", {{"name", EventName(involved, reason, message)}, {"namespace", ns}}},
          {"spec",
           {{"involvedObject", ref},
            {"type", type},
            {"reason", reason},
            {"message", message},
            {"source", source},
            {"count", 1},
            {"firstTimestamp", now},
            {"lastTimestamp", now}}}};
}

Json RepeatEvent(Json existing) {
  Json& spec = existing["spec"];
  spec["count"] = spec.value("count", 1) + 1;
  spec["lastTimestamp"] = NowRfc3339();
  return existing;
}

}  // namespace mentat
