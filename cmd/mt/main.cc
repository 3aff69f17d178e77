// mt: the Mentat command line.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "apis/client.h"
#include "apis/schema.h"
#include "apis/service.h"
#include "apis/yaml.h"
#include "store/snapshot.h"
#include "cmd/mt/table.h"

using namespace mentat;
namespace fs = std::filesystem;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;  // the request failed (invalid input, conflict, not found...)
constexpr int kExitUnavailable = 3;  // the server could not be reached

int Report(const Error& e, const std::string& context = "") {
  std::cerr << "error: " << (context.empty() ? "" : context + ": ") << e.ToString() << "\n";
  return e.code() == Code::kUnavailable ? kExitUnavailable : kExitError;
}

struct Source {
  std::string path;  // as the user named it, or "-" for stdin
  std::string text;
};

Result<std::vector<Source>> CollectSources(const std::vector<std::string>& inputs, bool recursive) {
  std::vector<Source> out;
  for (const auto& in : inputs) {
    if (in == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      out.push_back({"<stdin>", ss.str()});
      continue;
    }
    std::error_code ec;
    auto status = fs::status(in, ec);
    if (ec || !fs::exists(status)) return NotFound(in + ": no such file or directory");
    std::vector<fs::path> files;
    if (fs::is_directory(status)) {
      auto add = [&](const fs::directory_entry& e) {
        auto ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
          files.push_back(e.path());
        }
      };
      if (recursive) {
        for (const auto& e : fs::recursive_directory_iterator(in, ec)) add(e);
      } else {
        for (const auto& e : fs::directory_iterator(in, ec)) add(e);
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(in);
    }
    for (const auto& f : files) {
      std::ifstream stream(f, std::ios::binary);
      if (!stream) return ErrnoError(f.string(), errno);
      std::stringstream ss;
      ss << stream.rdbuf();
      if (ss.str().size() > kMaxManifestBytes) {
        return MakeError(Code::kTooLarge, f.string() + ": " + std::to_string(ss.str().size()) +
                                              " bytes; manifests are limited to " +
                                              std::to_string(kMaxManifestBytes) + " bytes");
      }
      out.push_back({f.string(), ss.str()});
    }
  }
  return out;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(tolower(c));
  return s;
}

// Prints an apply error the way compilers do: one "file:line:col: field: message" per problem.
void PrintApplyError(const Error& e) {
  std::cerr << "error: " << e.message() << "\n";
  for (const auto& d : e.details()) {
    std::string where = d.source.empty() ? "<input>" : d.source;
    if (d.line > 0) where += ":" + std::to_string(d.line);
    if (d.column > 0) where += ":" + std::to_string(d.column);
    std::cerr << "  " << where << ": " << (d.field.empty() ? "" : d.field + ": ") << d.message
              << "\n";
  }
}

int Apply(ApiClient& client, const std::vector<std::string>& files, bool recursive,
          const std::string& dry_run, const std::string& ns) {
  if (!dry_run.empty() && dry_run != "server" && dry_run != "none") {
    std::cerr << "error: --dry-run must be \"server\" or \"none\"\n";
    return kExitError;
  }
  auto sources = CollectSources(files, recursive);
  if (!sources) return Report(sources.error());
  if (sources->empty()) {
    std::cerr << "error: no .yaml, .yml or .json files in " << files[0] << "\n";
    return kExitError;
  }
  // The server decodes, normalizes, validates and admits every document, and writes all of
  // them in one transaction or none.
  Json documents = Json::array();
  for (const auto& s : *sources) {
    // JSON cannot carry invalid UTF-8, so that one check happens here, with the same message.
    if (auto bad = CheckUtf8(s.text); !bad) {
      Error e = bad.error();
      for (auto& d : e.mutable_details()) d.source = s.path;
      PrintApplyError(e);
      return kExitError;
    }
    documents.push_back({{"source", s.path}, {"text", s.text}});
  }
  bool server_dry_run = dry_run == "server";
  auto res = client.Apply(documents, server_dry_run, ns);
  if (!res) {
    if (res.error().code() == Code::kUnavailable) return Report(res.error());
    PrintApplyError(res.error());
    return kExitError;
  }
  if ((*res)["items"].empty()) {
    std::cerr << "error: no objects found in the input\n";
    return kExitError;
  }
  for (const auto& item : (*res)["items"]) {
    std::cout << Lower(item.value("kind", "")) << "/" << item.value("name", "") << " "
              << item.value("action", "") << (server_dry_run ? " (server dry run)" : "") << "\n";
  }
  return kExitOk;
}

std::string Age(const Json& obj) {
  auto t = ParseTime(obj.value("metadata", Json::object()).value("creationTimestamp", ""));
  if (!t) return "<unknown>";
  return HumanAge(std::chrono::system_clock::now() - *t);
}

std::vector<std::string> Row(const KindInfo& kind, const Json& o, bool wide) {
  const Json& spec = o.value("spec", Json::object());
  const Json& st = o.value("status", Json::object());
  if (kind.kind == "Service") {
    int count = spec.value("count", 0);
    std::vector<std::string> r = {
        NameOf(o), spec.value("driver", ""),
        std::to_string(st.value("readyReplicas", 0)) + "/" + std::to_string(count),
        st.value("phase", "Pending"), Age(o)};
    if (wide) r.push_back(st.value("message", ""));
    return r;
  }
  if (kind.kind == "Allocation") {
    std::vector<std::string> r = {NameOf(o), spec.value("service", ""), spec.value("nodeName", ""),
                                  st.value("phase", "Pending"),
                                  std::to_string(st.value("restarts", 0)), Age(o)};
    if (wide) {
      r.push_back(st.contains("pid") ? std::to_string(st.value("pid", 0)) : "");
      r.push_back(st.value("message", ""));
    }
    return r;
  }
  if (kind.kind == "Node") {
    std::string drivers;
    const Json fingerprint = st.value("drivers", Json::object());
    for (auto it = fingerprint.begin(); it != fingerprint.end(); ++it) {
      drivers += (drivers.empty() ? "" : ",") + it.key();
    }
    return {NameOf(o), st.value("ready", false) ? "Ready" : "NotReady", drivers, Age(o)};
  }
  return {NameOf(o), Age(o)};
}

std::vector<std::string> Header(const KindInfo& kind, bool wide) {
  if (kind.kind == "Service") {
    std::vector<std::string> h = {"NAME", "DRIVER", "READY", "STATUS", "AGE"};
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
  if (kind.kind == "Node") return {"NAME", "STATUS", "DRIVERS", "AGE"};
  return {"NAME", "AGE"};
}

int Get(ApiClient& client, const std::string& kind_name, const std::string& name,
        const std::string& output, const std::string& selector, const std::string& ns,
        bool all_namespaces, bool watch) {
  auto kind = KindByName(kind_name);
  if (!kind) {
    std::cerr << "error: unknown resource type \"" << kind_name
              << "\"; try services, allocations, nodes or securityprofiles\n";
    return kExitError;
  }
  if (output != "" && output != "wide" && output != "json" && output != "yaml" && output != "name") {
    std::cerr << "error: -o must be one of wide, json, yaml, name\n";
    return kExitError;
  }
  RequestOptions ro;
  ro.ns = all_namespaces ? "" : ns;
  ro.label_selector = selector;
  bool wide = output == "wide";
  auto print = [&](const Json& obj) {
    if (output == "json") {
      std::cout << obj.dump(2) << "\n";
    } else if (output == "yaml") {
      std::cout << EncodeYaml(obj);
    } else if (output == "name") {
      std::cout << Lower(std::string(kind->kind)) << "/" << NameOf(obj) << "\n";
    }
  };
  int64_t rv = 0;
  std::vector<Json> items;
  if (!name.empty()) {
    RequestOptions one = ro;
    if (one.ns.empty()) one.ns = std::string(kDefaultNamespace);
    auto obj = client.Get(std::string(kind->plural), name, one);
    if (!obj) return Report(obj.error());
    rv = ResourceVersionOf(*obj);
    items.push_back(*obj);
    if (!output.empty() && !wide) {
      print(*obj);
      if (!watch) return kExitOk;
    }
  } else {
    if (ro.ns.empty() && !all_namespaces && kind->namespaced) ro.ns = std::string(kDefaultNamespace);
    auto list = client.List(std::string(kind->plural), ro);
    if (!list) return Report(list.error());
    rv = std::stoll(list->value("resourceVersion", std::string("0")));
    for (const auto& i : (*list)["items"]) items.push_back(i);
    if (output == "json" || output == "yaml") {
      if (output == "json") std::cout << list->dump(2) << "\n";
      else std::cout << EncodeYaml(*list);
      if (!watch) return kExitOk;
    } else if (output == "name") {
      for (const auto& i : items) print(i);
      if (!watch) return kExitOk;
    }
  }
  bool show_ns = all_namespaces && kind->namespaced;
  auto header = Header(*kind, wide);
  if (show_ns) header.insert(header.begin(), "NAMESPACE");
  auto row = [&](const Json& o) {
    auto r = Row(*kind, o, wide);
    if (show_ns) r.insert(r.begin(), NamespaceOf(o));
    return r;
  };
  Table table(header);
  if (output.empty() || wide) {
    for (const auto& i : items) table.Add(row(i));
    if (items.empty() && !watch) {
      std::cerr << "No " << kind->plural << " found"
                << (kind->namespaced && !all_namespaces
                        ? " in namespace " + (ro.ns.empty() ? std::string(kDefaultNamespace) : ro.ns)
                        : "")
                << ".\n";
      return kExitOk;
    }
    std::cout << table.Render() << std::flush;
  }
  if (!watch) return kExitOk;
  // Follow changes from the listed revision; on disconnect, resume from the last one seen.
  while (true) {
    auto st = client.Watch(std::string(kind->plural), rv, ro, [&](const Json& ev) {
      const Json& obj = ev["object"];
      std::string type = ev.value("type", "");
      if (type == "BOOKMARK" || type == "ERROR") {
        if (type == "BOOKMARK") rv = ResourceVersionOf(obj);
        return true;
      }
      rv = ResourceVersionOf(obj);
      if (!name.empty() && NameOf(obj) != name) return true;
      if (output.empty() || wide) {
        auto r = row(obj);
        if (type == "DELETED") r.back() += " (deleted)";
        std::cout << table.RenderRow(r) << std::flush;
      } else {
        print(obj);
      }
      return true;
    });
    if (!st) {
      if (st.error().code() == Code::kGone) return Report(st.error());
      std::cerr << "watch interrupted (" << st.error().message() << "); resuming\n";
      // Pacing for reconnects to a server that is restarting.
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
}

int Delete(ApiClient& client, const std::string& kind_name, const std::vector<std::string>& names,
           const std::string& ns) {
  auto kind = KindByName(kind_name);
  if (!kind) {
    std::cerr << "error: unknown resource type \"" << kind_name << "\"\n";
    return kExitError;
  }
  int rc = kExitOk;
  for (const auto& n : names) {
    RequestOptions ro;
    ro.ns = ns;
    auto res = client.Delete(std::string(kind->plural), n, ro);
    if (!res) {
      rc = Report(res.error());
      continue;
    }
    std::cout << Lower(std::string(kind->kind)) << "/" << n << " deleted\n";
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mt: the Mentat command line"};
  app.require_subcommand(1);
  std::string server = "http://127.0.0.1:4646";
  std::string token;
  std::string ns = std::string(kDefaultNamespace);
  app.add_option("--server,-s", server, "Mentat server URL")->envname("MENTAT_ADDR")
      ->capture_default_str();
  app.add_option("--token", token, "API token")->envname("MENTAT_TOKEN");
  auto* ns_opt = app.add_option("--namespace,-n", ns, "namespace")->capture_default_str();
  // Global flags may come before or after the subcommand: `mt get services -n staging`.
  app.fallthrough(true);

  auto* apply = app.add_subcommand("apply", "create or update objects from manifests");
  std::vector<std::string> files;
  bool recursive = false;
  std::string dry_run;
  apply->add_option("-f,--filename", files, "file, directory or - for stdin")->required();
  apply->add_flag("-R,--recursive", recursive, "descend into directories");
  apply->add_option("--dry-run", dry_run, "\"server\": validate and admit, persist nothing")
      ->expected(0, 1)
      ->default_str("server");

  auto* get = app.add_subcommand("get", "show objects");
  std::string kind, name, output, selector;
  bool all_ns = false, watch = false;
  get->add_option("kind", kind, "services, allocations, nodes, ...")->required();
  get->add_option("name", name, "one object");
  get->add_option("-o,--output", output, "wide, json, yaml or name");
  get->add_option("-l,--selector", selector, "label selector, e.g. app=web,tier!=db");
  get->add_flag("-A,--all-namespaces", all_ns, "every namespace");
  get->add_flag("-w,--watch", watch, "keep printing changes");

  auto* del = app.add_subcommand("delete", "delete objects");
  std::string del_kind;
  std::vector<std::string> del_names;
  del->add_option("kind", del_kind, "services, allocations, nodes, ...")->required();
  del->add_option("names", del_names, "names")->required();

  auto* snapshot = app.add_subcommand("snapshot", "save a point-in-time snapshot of the store");
  snapshot->require_subcommand(1);
  auto* snapshot_save = snapshot->add_subcommand("save", "write a snapshot to FILE");
  std::string snapshot_file;
  snapshot_save->add_option("file", snapshot_file, "where to write it")->required();

  auto* version = app.add_subcommand("version", "print the version");
  auto* schema = app.add_subcommand("schema", "print the JSON Schema of the Service manifest");

  CLI11_PARSE(app, argc, argv);
  bool ns_given = ns_opt->count() > 0;

  if (version->parsed()) {
    std::cout << "mt version 0.1.0 (api " << kApiVersion << ")\n";
    return kExitOk;
  }
  if (schema->parsed()) {
    std::cout << ServiceManifestSchema().dump(2) << "\n";
    return kExitOk;
  }
  auto client = ApiClient::Create(server, token);
  if (!client) return Report(client.error());
  if (snapshot_save->parsed()) {
    auto text = (*client)->GetRaw("/v1/snapshot");
    if (!text) return Report(text.error());
    // Check it before keeping it: a snapshot that fails later, at restore, is no backup.
    auto info = VerifySnapshot(*text);
    if (!info) return Report(info.error());
    std::string tmp = snapshot_file + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << *text;
      f.flush();
      if (!f) return Report(Error(Code::kInternal, "writing " + tmp));
    }
    std::error_code ec;
    fs::rename(tmp, snapshot_file, ec);
    if (ec) return Report(Error(Code::kInternal, "renaming " + tmp + ": " + ec.message()));
    std::cout << "snapshot of " << info->objects << " objects at revision " << info->revision
              << " saved to " << snapshot_file << "\n";
    return kExitOk;
  }
  if (apply->parsed()) return Apply(**client, files, recursive, dry_run, ns_given ? ns : "");
  if (get->parsed()) return Get(**client, kind, name, output, selector, ns, all_ns, watch);
  if (del->parsed()) return Delete(**client, del_kind, del_names, ns);
  return kExitError;
}
