#include "cmd/mt/columns.h"

#include <algorithm>

#include "cmd/mt/args.h"

namespace mentat::mt {

std::string AgeOf(const std::string& rfc3339) {
  auto t = ParseTime(rfc3339);
  if (!t) return "<unknown>";
  return HumanAge(std::chrono::system_clock::now() - *t);
}

std::string Age(const Json& obj) {
  return AgeOf(obj.value("metadata", Json::object()).value("creationTimestamp", ""));
}

std::string NodeStatus(const Json& node) {
  const Json& st = node.value("status", Json::object());
  if (!st.contains("lastHeartbeat")) return "Unknown";
  auto hb = ParseTime(st.value("lastHeartbeat", ""));
  bool fresh = hb && std::chrono::system_clock::now() - *hb < std::chrono::seconds(30);
  return st.value("ready", false) && fresh ? "Ready" : "NotReady";
}

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
  if (!st.contains("observedGeneration")) return obj.value("kind", "") != "Service";
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

std::vector<std::string> Header(const KindInfo& kind, bool wide) {
  if (kind.kind == "Service") {
    std::vector<std::string> h = {"NAME", "DRIVER", "READY", "UP-TO-DATE", "STATUS", "AGE"};
    if (wide) h.push_back("MESSAGE");
    return h;
  }
  if (kind.kind == "Allocation") {
    std::vector<std::string> h = {"NAME", "SERVICE", "NODE", "STATUS", "RESTARTS", "AGE"};
    if (wide) {
      h.push_back("PID");
      h.push_back("MESSAGE");
    }
    return h;
  }
  if (kind.kind == "Node") {
    std::vector<std::string> h = {"NAME", "STATUS", "DRIVERS", "AGE"};
    if (wide) {
      h.push_back("HEARTBEAT");
      h.push_back("CPUS");
    }
    return h;
  }
  if (kind.kind == "SecurityProfile") {
    std::vector<std::string> h = {"NAME", "DRIVER", "ISOLATION", "AGE"};
    return h;
  }
  if (kind.kind == "NamespacePolicy") return {"NAME", "NAMESPACES", "ALLOWED", "AGE"};
  return {"NAME", "AGE"};
}

std::vector<std::string> Row(const KindInfo& kind, const Json& o, bool wide) {
  const Json& spec = o.value("spec", Json::object());
  const Json& st = o.value("status", Json::object());
  if (kind.kind == "Service") {
    int count = spec.value("count", 1);
    std::vector<std::string> r = {
        NameOf(o),
        spec.value("driver", ""),
        std::to_string(st.value("readyReplicas", 0)) + "/" + std::to_string(count),
        std::to_string(st.value("updatedReplicas", 0)),
        st.value("phase", "Pending"),
        Age(o)};
    if (wide) r.push_back(st.value("message", ""));
    return r;
  }
  if (kind.kind == "Allocation") {
    std::string node = spec.value("nodeName", "");
    std::vector<std::string> r = {NameOf(o),
                                  spec.value("service", ""),
                                  node.empty() ? "<none>" : node,
                                  st.value("phase", "Pending"),
                                  std::to_string(st.value("restarts", 0)),
                                  Age(o)};
    if (wide) {
      r.push_back(st.contains("pid") ? std::to_string(st.value("pid", 0)) : "");
      r.push_back(st.value("message", ""));
    }
    return r;
  }
  if (kind.kind == "Node") {
    // Drivers that fingerprinted healthy; an unhealthy one is shown with a '!'.
    std::string drivers;
    const Json fingerprint = st.value("drivers", Json::object());
    for (auto it = fingerprint.begin(); it != fingerprint.end(); ++it) {
      bool healthy = it.value().is_object() && it.value().value("healthy", false);
      drivers += (drivers.empty() ? "" : ",") + it.key() + (healthy ? "" : "!");
    }
    std::vector<std::string> r = {NameOf(o), NodeStatus(o), drivers.empty() ? "<none>" : drivers,
                                  Age(o)};
    if (wide) {
      std::string hb = st.value("lastHeartbeat", "");
      r.push_back(hb.empty() ? "<never>" : AgeOf(hb) + " ago");
      const Json capacity = st.value("capacity", Json::object());
      r.push_back(capacity.contains("cpus") ? capacity["cpus"].dump() : "");
    }
    return r;
  }
  if (kind.kind == "SecurityProfile") {
    auto text = [&](const char* key) {
      auto it = spec.find(key);
      if (it == spec.end()) return std::string("");
      return it->is_string() ? it->get<std::string>() : it->dump();
    };
    return {NameOf(o), text("driver"), text("isolation"), Age(o)};
  }
  if (kind.kind == "NamespacePolicy") {
    auto joined = [&](const char* key) {
      std::string out;
      for (const auto& e : spec.value(key, Json::array())) {
        if (e.is_string()) out += (out.empty() ? "" : ",") + e.get<std::string>();
      }
      return out;
    };
    return {NameOf(o), joined("namespaces"), joined("allowedProfiles"), Age(o)};
  }
  return {NameOf(o), Age(o)};
}

}  // namespace mentat::mt
