// mt get (and mt nodes): tables in the kubectl style, -o json|yaml|name, and -w, which keeps
// printing one row per change and survives server restarts (see apis/list_watch.h).
#include <iostream>

#include <CLI/CLI.hpp>

#include "apis/yaml.h"
#include "cmd/mt/args.h"
#include "cmd/mt/columns.h"
#include "cmd/mt/commands.h"
#include "apis/list_watch.h"
#include "cmd/mt/output.h"
#include "cmd/mt/table.h"

namespace mentat::mt {

int RunGet(ApiClient& client, const GetFlags& f) {
  auto refs = ParseRefs(f.args, /*names_optional=*/true);
  if (!refs) return UsageError(refs.error().message());
  const KindInfo kind = (*refs)[0].kind;
  for (const auto& r : *refs) {
    if (r.kind.kind != kind.kind) return UsageError("get shows one kind at a time");
  }
  const std::string& output = f.output;
  if (output != "" && output != "wide" && output != "json" && output != "yaml" &&
      output != "name") {
    return UsageError("-o must be one of wide, json, yaml, name");
  }
  std::vector<std::string> names;
  for (const auto& r : *refs) {
    if (!r.name.empty()) names.push_back(r.name);
  }
  bool wide = output == "wide";
  bool table_output = output.empty() || wide;
  RequestOptions ro;
  ro.ns = kind.namespaced && !f.all_namespaces ? f.ns : "";
  ro.label_selector = f.selector;
  bool show_ns = f.all_namespaces && kind.namespaced;

  auto print_object = [&](const Json& obj) {
    if (output == "json") {
      std::cout << obj.dump(2) << "\n";
    } else if (output == "yaml") {
      std::cout << (f.watch ? "---\n" : "") << EncodeYaml(obj);
    } else if (output == "name") {
      std::cout << RefString(obj) << "\n";
    }
  };
  auto header = PrinterHeader(kind, wide);
  if (show_ns) header.insert(header.begin(), "NAMESPACE");
  auto row = [&](const Json& o) {
    auto r = PrinterRow(kind, o, wide);
    if (show_ns) r.insert(r.begin(), NamespaceOf(o));
    return r;
  };
  Table table(header);

  // Named objects are read one by one (a missing one is an error); otherwise one list.
  std::vector<Json> items;
  ListWatcher follower(client, std::string(kind.plural), ro);
  int rc = kExitOk;
  if (!names.empty()) {
    RequestOptions one = ro;
    if (kind.namespaced && one.ns.empty()) one.ns = f.ns;
    for (const auto& n : names) {
      auto obj = client.Get(std::string(kind.plural), n, one);
      if (!obj) {
        rc = PrintError(obj.error());
        if (rc != kExitError) return rc;
        continue;
      }
      items.push_back(*obj);
    }
    if (items.empty() && !f.watch) return rc;
    if (f.watch) {
      auto listed = follower.List();
      if (!listed) return PrintError(listed.error());
    }
  } else {
    auto listed = follower.List();
    if (!listed) return PrintError(listed.error());
    items = *listed;
  }

  if (table_output) {
    for (const auto& i : items) table.Add(row(i));
    if (items.empty() && names.empty()) {
      std::cerr << "No " << kind.plural << " found"
                << (kind.namespaced && !f.all_namespaces ? " in namespace " + f.ns : "") << ".\n";
      if (!f.watch) return kExitOk;
    } else {
      std::cout << table.Render() << std::flush;
    }
  } else if (names.empty() && (output == "json" || output == "yaml") && !f.watch) {
    // A list prints as one <Kind>List document, as the API returns it.
    Json list = {{"apiVersion", std::string(kApiVersion)},
                 {"kind", std::string(kind.kind) + "List"},
                 {"items", items},
                 {"resourceVersion", std::to_string(follower.revision())}};
    if (output == "json") {
      std::cout << list.dump(2) << "\n";
    } else {
      std::cout << EncodeYaml(list);
    }
  } else if (names.size() == 1 && (output == "json" || output == "yaml") && !f.watch) {
    print_object(items[0]);
  } else {
    for (const auto& i : items) print_object(i);
  }
  std::cout << std::flush;
  if (!f.watch) return rc;

  follower.set_notice([](const std::string& note) { std::cerr << note << "\n"; });
  auto ran = follower.Run([&](const std::string& type, const Json& obj) {
    if (!names.empty() && std::find(names.begin(), names.end(), NameOf(obj)) == names.end()) {
      return true;
    }
    if (table_output) {
      auto r = row(obj);
      if (type == "DELETED") r.back() += " (deleted)";
      std::cout << table.RenderRow(r);
    } else {
      print_object(obj);
    }
    std::cout << std::flush;
    return true;
  });
  if (!ran) return PrintError(ran.error());
  return kExitOk;
}

Command AddGetCommand(CLI::App& app) {
  auto f = std::make_shared<GetFlags>();
  auto* get = app.add_subcommand("get", "show objects");
  get->add_option("resources", f->args, "KIND [NAME...] or KIND/NAME...")->required();
  get->add_option("-o,--output", f->output, "wide, json, yaml or name");
  get->add_option("-l,--selector", f->selector, "label selector, e.g. app=web,tier!=db");
  get->add_flag("-A,--all-namespaces", f->all_namespaces, "every namespace");
  get->add_flag("-w,--watch", f->watch, "keep printing changes");
  return {.cli = get, .connected = [f](const Session& s) {
            f->ns = s.ns;
            return RunGet(s.client, *f);
          }};
}

Command AddNodesCommand(CLI::App& app) {
  auto f = std::make_shared<GetFlags>();
  auto* nodes = app.add_subcommand("nodes", "show nodes (the same as get nodes)");
  nodes->add_option("names", f->args, "node names");
  nodes->add_option("-o,--output", f->output, "wide, json, yaml or name");
  nodes->add_option("-l,--selector", f->selector, "label selector");
  nodes->add_flag("-w,--watch", f->watch, "keep printing changes");
  return {.cli = nodes, .connected = [f](const Session& s) {
            f->args.insert(f->args.begin(), "nodes");
            f->ns = s.ns;
            return RunGet(s.client, *f);
          }};
}

}  // namespace mentat::mt
