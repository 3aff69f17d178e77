// mt describe: one object in prose. Metadata, the spec (as YAML), status, conditions with
// their reasons and messages as the server wrote them, what belongs to the object (a
// Service's allocations, a Node's allocations), and its recent Events.
#include <iostream>

#include <algorithm>

#include <CLI/CLI.hpp>

#include "apis/yaml.h"
#include "cmd/mt/args.h"
#include "cmd/mt/columns.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/describe.h"
#include "cmd/mt/output.h"
#include "cmd/mt/table.h"

namespace mentat::mt {
namespace {

// "Key:" padded to a column, kubectl style.
void Field(std::string& out, const std::string& key, const std::string& value, int indent = 0) {
  std::string k = std::string(indent, ' ') + key + ":";
  out += k + std::string(k.size() < 20 ? 20 - k.size() : 1, ' ') + value + "\n";
}

std::string MapText(const Json& m) {
  if (!m.is_object() || m.empty()) return "<none>";
  std::string s;
  for (auto it = m.begin(); it != m.end(); ++it) {
    s += (s.empty() ? "" : ",") + it.key() + "=" +
         (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  }
  return s;
}

std::string Indent(const std::string& text, int n) {
  std::string out, pad(n, ' ');
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out += pad + text.substr(start, nl - start) + "\n";
    start = nl + 1;
  }
  return out;
}

std::string Scalar(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void AllocationTable(std::string& out, const Result<Json>& list, bool by_node) {
  out += "Allocations:\n";
  if (!list) {
    out += "  <could not list: " + list.error().message() + ">\n";
    return;
  }
  const Json items = list->value("items", Json::array());
  if (items.empty()) {
    out += "  <none>\n";
    return;
  }
  Table t(by_node
              ? std::vector<std::string>{"NAMESPACE", "NAME", "SERVICE", "STATUS", "RESTARTS",
                                         "AGE", "MESSAGE"}
              : std::vector<std::string>{"NAME", "NODE", "STATUS", "RESTARTS", "AGE", "MESSAGE"});
  for (const auto& a : items) {
    const Json& spec = a.value("spec", Json::object());
    const Json& st = a.value("status", Json::object());
    std::string node = spec.value("nodeName", "");
    std::vector<std::string> r = {NameOf(a),
                                  node.empty() ? "<none>" : node,
                                  st.value("phase", "Pending"),
                                  std::to_string(st.value("restarts", 0)),
                                  Age(a),
                                  st.value("message", "")};
    if (by_node) {
      r = {NamespaceOf(a),
           NameOf(a),
           spec.value("service", ""),
           st.value("phase", "Pending"),
           std::to_string(st.value("restarts", 0)),
           Age(a),
           st.value("message", "")};
    }
    t.Add(r);
  }
  out += Indent(t.Render(), 2);
}

std::string Describe(ApiClient& client, const KindInfo& kind, const Json& obj) {
  std::string out;
  const Json& meta = obj.value("metadata", Json::object());
  const Json& spec = obj.value("spec", Json::object());
  const Json& st = obj.value("status", Json::object());
  Field(out, "Name", NameOf(obj));
  if (kind.namespaced) Field(out, "Namespace", NamespaceOf(obj));
  Field(out, "Kind", std::string(kind.kind));
  Field(out, "Labels", MapText(meta.value("labels", Json::object())));
  Field(out, "Annotations", MapText(meta.value("annotations", Json::object())));
  std::string created = meta.value("creationTimestamp", "");
  Field(out, "Created", created.empty() ? "<unknown>" : created + " (" + AgeOf(created) + " ago)");
  std::string generation = std::to_string(meta.value("generation", 0));
  if (st.contains("observedGeneration")) {
    generation += " (status observed " + std::to_string(st.value("observedGeneration", 0)) + ")";
  }
  Field(out, "Generation", generation);
  Field(out, "Resource Version",
        meta.contains("resourceVersion") ? Scalar(meta["resourceVersion"]) : "");

  if (kind.kind == "Node") {
    out += "Status:\n";
    Field(out, "Status", NodeStatus(obj), 2);
    std::string hb = st.value("lastHeartbeat", "");
    Field(out, "Last Heartbeat", hb.empty() ? "<never>" : hb + " (" + AgeOf(hb) + " ago)", 2);
    const Json capacity = st.value("capacity", Json::object());
    for (auto it = capacity.begin(); it != capacity.end(); ++it) {
      Field(out, "Capacity " + it.key(), Scalar(it.value()), 2);
    }
    if (const Json a = st.value("artifacts", Json::object()); !a.empty()) {
      auto mib = [&](const char* k) {
        return std::to_string(a.value(k, uint64_t{0}) >> 20) + " MiB";
      };
      auto num = [&](const char* k) { return std::to_string(a.value(k, uint64_t{0})); };
      Field(out, "Unpacked Artifacts",
            num("trees") + " trees, " + mib("bytes") + " of " + mib("budgetBytes") + ", " +
                num("entries") + " of " + num("budgetEntries") + " entries; removed " +
                num("removedTrees") + " (" + mib("removedBytes") + "), refused " + num("refused"),
            2);
    }
    out += "Drivers:\n";
    const Json drivers = st.value("drivers", Json::object());
    if (drivers.empty()) out += "  <none>\n";
    for (auto it = drivers.begin(); it != drivers.end(); ++it) {
      const Json& d = it.value();
      bool healthy = d.is_object() && d.value("healthy", false);
      std::string detail = d.is_object() ? d.value("detail", "") : "";
      Field(out, it.key(),
            std::string(healthy ? "healthy" : "unhealthy") +
                (detail.empty() ? "" : " (" + detail + ")"),
            2);
    }
    out += ConditionsText(obj);
    RequestOptions ro;
    ro.label_selector = std::string(kLabelNode) + "=" + NameOf(obj);
    AllocationTable(out, client.List("allocations", ro), /*by_node=*/true);
    out += EventsText(client, obj);
    return out;
  }

  out += "Spec:\n";
  out += spec.empty() ? "  <none>\n" : Indent(EncodeYaml(spec), 2);

  if (kind.kind == "Service") {
    out += "Status:\n";
    Field(out, "Phase", st.value("phase", "<none>"), 2);
    Field(out, "Replicas",
          std::to_string(st.value("readyReplicas", 0)) + " ready, " +
              std::to_string(st.value("updatedReplicas", 0)) + " up to date, " +
              std::to_string(st.value("replicas", 0)) + " total, " +
              std::to_string(spec.value("count", 1)) + " desired",
          2);
    if (!st.value("message", "").empty()) Field(out, "Message", st.value("message", ""), 2);
    out += ConditionsText(obj);
    RequestOptions ro;
    ro.ns = NamespaceOf(obj);
    ro.label_selector = std::string(kLabelService) + "=" + NameOf(obj);
    AllocationTable(out, client.List("allocations", ro), /*by_node=*/false);
    out += EventsText(client, obj);
    return out;
  }
  if (kind.kind == "Allocation") {
    out += "Status:\n";
    Field(out, "Phase", st.value("phase", "Pending"), 2);
    const std::pair<const char*, const char*> fields[] = {
        {"message", "Message"},      {"pid", "PID"},
        {"startedAt", "Started"},    {"restarts", "Restarts"},
        {"exitCode", "Exit Code"},   {"signal", "Signal"},
        {"oomKilled", "OOM Killed"}, {"node", "Node"}};
    for (const auto& [key, label] : fields) {
      if (st.contains(key)) Field(out, label, Scalar(st[key]), 2);
    }
    out += ConditionsText(obj);
    out += EventsText(client, obj);
    return out;
  }
  if (!st.empty()) out += "Status:\n" + Indent(EncodeYaml(st), 2);
  return out;
}

}  // namespace

std::string ConditionsText(const Json& obj) {
  std::string out;
  const Json conditions = obj.value("status", Json::object()).value("conditions", Json::array());
  out += "Conditions:\n";
  if (conditions.empty()) {
    out += "  <none>\n";
    return out;
  }
  Table t({"TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"});
  for (const auto& c : conditions) {
    t.Add({c.value("type", ""), c.value("status", ""), c.value("reason", ""),
           AgeOf(c.value("lastTransitionTime", "")), c.value("message", "")});
  }
  out += Indent(t.Render(), 2);
  return out;
}

std::string EventsText(ApiClient& client, const Json& obj, size_t limit) {
  std::string out = "Events:\n";
  RequestOptions ro;
  ro.ns = NamespaceOf(obj).empty() ? std::string(kDefaultNamespace) : NamespaceOf(obj);
  auto list = client.List("events", ro);
  if (!list) {
    out += "  <could not list: " + list.error().message() + ">\n";
    return out;
  }
  std::vector<Json> mine;
  for (const auto& e : list->value("items", Json::array())) {
    const Json& ref = e.value("spec", Json::object()).value("involvedObject", Json::object());
    if (ref.value("kind", "") == obj.value("kind", "") && ref.value("name", "") == NameOf(obj)) {
      mine.push_back(e);
    }
  }
  if (mine.empty()) {
    out += "  <none>\n";
    return out;
  }
  std::sort(mine.begin(), mine.end(), [](const Json& a, const Json& b) {
    return a["spec"].value("lastTimestamp", "") < b["spec"].value("lastTimestamp", "");
  });
  if (limit > 0 && mine.size() > limit) mine.erase(mine.begin(), mine.end() - static_cast<long>(limit));
  Table t({"TYPE", "REASON", "AGE", "FROM", "MESSAGE"});
  for (const auto& e : mine) {
    const Json& spec = e["spec"];
    int count = spec.value("count", 1);
    std::string age = AgeOf(spec.value("lastTimestamp", ""));
    if (count > 1) age += " (x" + std::to_string(count) + " over " + AgeOf(spec.value("firstTimestamp", "")) + ")";
    t.Add({spec.value("type", ""), spec.value("reason", ""), age, spec.value("source", ""),
           spec.value("message", "")});
  }
  out += Indent(t.Render(), 2);
  return out;
}

int RunDescribe(ApiClient& client, const DescribeFlags& f) {
  auto refs = ParseRefs(f.args, /*names_optional=*/true);
  if (!refs) return UsageError(refs.error().message());
  std::vector<std::pair<KindInfo, Json>> objects;
  int rc = kExitOk;
  for (const auto& r : *refs) {
    RequestOptions ro;
    ro.ns = r.kind.namespaced ? f.ns : "";
    if (r.name.empty()) {
      ro.label_selector = f.selector;
      auto list = client.List(std::string(r.kind.plural), ro);
      if (!list) return PrintError(list.error());
      for (const auto& item : list->value("items", Json::array()))
        objects.push_back({r.kind, item});
      if (list->value("items", Json::array()).empty()) {
        std::cerr << "No " << r.kind.plural << " found"
                  << (r.kind.namespaced ? " in namespace " + f.ns : "") << ".\n";
      }
      continue;
    }
    auto obj = client.Get(std::string(r.kind.plural), r.name, ro);
    if (!obj) {
      rc = PrintError(obj.error());
      if (rc != kExitError) return rc;
      continue;
    }
    objects.push_back({r.kind, *obj});
  }
  for (size_t i = 0; i < objects.size(); ++i) {
    if (i) std::cout << "\n";
    std::cout << Describe(client, objects[i].first, objects[i].second);
  }
  return rc;
}

Command AddDescribeCommand(CLI::App& app) {
  auto f = std::make_shared<DescribeFlags>();
  auto* describe = app.add_subcommand("describe", "show one object in detail");
  describe->add_option("resources", f->args, "KIND [NAME...] or KIND/NAME...")->required();
  describe->add_option("-l,--selector", f->selector, "label selector (with a KIND)");
  return {.cli = describe, .connected = [f](const Session& s) {
            f->ns = s.ns;
            return RunDescribe(s.client, *f);
          }};
}

}  // namespace mentat::mt
