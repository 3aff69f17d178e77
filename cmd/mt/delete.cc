// mt delete: by name (KIND NAME... or KIND/NAME...), by selector (-l, --all), or every object
// that manifests declare (-f): the server's dry-run apply names them exactly as apply would
// (nameless manifests named from their file, the -n namespace, seed forms), so delete -f
// removes what apply -f created. Manifests that admission now refuses are named locally.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cmd/mt/app_rootfs.h"
#include "cmd/mt/args.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/manifests.h"
#include "cmd/mt/output.h"

namespace mentat::mt {
namespace {

struct Target {
  KindInfo kind;
  std::string ns;
  std::string name;
};

}  // namespace

int RunDelete(ApiClient& client, const DeleteFlags& f) {
  bool by_file = !f.files.empty();
  if (by_file && !f.args.empty()) return UsageError("give either -f or KIND NAME..., not both");
  if (!by_file && f.args.empty()) {
    return UsageError(
        "name what to delete: KIND NAME..., KIND/NAME..., KIND -l SELECTOR, "
        "KIND --all, or -f FILE");
  }
  std::vector<Target> targets;
  if (by_file) {
    if (f.all || !f.selector.empty()) return UsageError("-f cannot be combined with --all or -l");
    auto sources = CollectSources(f.files, f.recursive, std::cerr);
    if (!sources) return PrintError(sources.error());
    // Only the names matter here: a relative rootfs need not be packed to be deleted.
    auto placeholders = ResolveAppRootfs(*sources, RootfsMode::kPlaceholder, nullptr, std::cerr);
    if (!placeholders) return PrintError(placeholders.error());
    auto documents = ApplyDocuments(*sources);
    if (!documents) return PrintError(documents.error());
    ApplyOptions ao;
    ao.dry_run = true;
    ao.ns = f.ns_given ? f.ns : "";
    auto named = client.Apply(*documents, ao);
    if (named) {
      for (const auto& item : named->value("items", Json::array())) {
        auto kind = KindByName(item.value("kind", ""));
        if (!kind) continue;
        targets.push_back({*kind, item.value("namespace", ""), item.value("name", "")});
      }
    } else if (named.error().code() == Code::kForbidden && !named.error().details().empty()) {
      // A policy now refuses these manifests (a stricter security profile): that must not
      // keep them from being deleted. Name the objects here, with the server's decoder.
      auto local = CanonicalObjects(*sources, ao.ns);
      if (!local) return PrintError(DryRunError(named.error()), "reading the manifests");
      for (const auto& [key, obj] : *local) {
        auto kind = KindByName(key.kind);
        if (kind) targets.push_back({*kind, key.ns, key.name});
      }
    } else {
      return PrintError(DryRunError(named.error()), "reading the manifests");
    }
  } else {
    auto refs = ParseRefs(f.args, /*names_optional=*/true);
    if (!refs) return UsageError(refs.error().message());
    bool bare_kind = refs->size() == 1 && (*refs)[0].name.empty();
    if (bare_kind != (f.all || !f.selector.empty())) {
      return UsageError(bare_kind ? "name the objects to delete, or select them with -l or --all"
                                  : "-l and --all select objects of a kind; do not also name them");
    }
    if (bare_kind) {
      const KindInfo kind = (*refs)[0].kind;
      RequestOptions ro;
      ro.ns = kind.namespaced ? f.ns : "";
      ro.label_selector = f.selector;
      auto list = client.List(std::string(kind.plural), ro);
      if (!list) return PrintError(list.error());
      for (const auto& item : list->value("items", Json::array())) {
        targets.push_back({kind, NamespaceOf(item), NameOf(item)});
      }
      if (targets.empty()) {
        std::cerr << "No " << kind.plural << " found"
                  << (kind.namespaced ? " in namespace " + f.ns : "") << ".\n";
        return kExitOk;
      }
    } else {
      for (const auto& r : *refs)
        targets.push_back({r.kind, r.kind.namespaced ? f.ns : "", r.name});
    }
  }
  // Every target is tried even when one fails; the exit code says whether any did.
  int rc = kExitOk;
  for (const auto& t : targets) {
    RequestOptions ro;
    ro.ns = t.ns;
    ro.dry_run = f.dry_run;
    auto res = client.Delete(std::string(t.kind.plural), t.name, ro);
    if (!res) {
      if (res.error().code() == Code::kNotFound && f.ignore_not_found) continue;
      int code = PrintError(res.error());
      if (code == kExitUnavailable || code == kExitUnauthorized) return code;
      rc = code;
      continue;
    }
    std::cout << RefString(t.kind, t.name) << " deleted" << (f.dry_run ? " (server dry run)" : "")
              << "\n"
              << std::flush;
  }
  return rc;
}

Command AddDeleteCommand(CLI::App& app) {
  auto f = std::make_shared<DeleteFlags>();
  auto dry_run = std::make_shared<std::string>();
  auto* del = app.add_subcommand("delete", "delete objects by name, selector or manifest");
  del->add_option("resources", f->args, "KIND NAME... or KIND/NAME...");
  del->add_option("-f,--filename", f->files,
                  "delete the objects these manifests declare (file, directory or -)");
  del->add_flag("-R,--recursive", f->recursive, "descend into directories");
  del->add_option("-l,--selector", f->selector, "delete the objects of KIND it selects");
  del->add_flag("--all", f->all, "delete every object of KIND in the namespace");
  del->add_flag("--ignore-not-found", f->ignore_not_found,
                "an object that does not exist is not an error");
  del->add_option("--dry-run", *dry_run, "\"server\": report what would be deleted, delete nothing")
      ->expected(0, 1)
      ->default_str("server");
  return {.cli = del, .connected = [f, dry_run](const Session& s) {
            f->ns = s.ns;
            f->ns_given = s.ns_given;
            if (!dry_run->empty() && *dry_run != "server" && *dry_run != "none") {
              return UsageError("--dry-run must be \"server\" or \"none\"");
            }
            f->dry_run = *dry_run == "server";
            return RunDelete(s.client, *f);
          }};
}

}  // namespace mentat::mt
