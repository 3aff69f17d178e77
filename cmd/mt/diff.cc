// mt diff: what `mt apply` would change, as the server sees it. The server's dry-run apply
// validates the whole set and says, per object, created / configured / unchanged (/ pruned);
// each changed object's would-be state comes from a dry-run PUT of its canonical form, and is
// compared with the live object, both as YAML without the fields the server manages.
#include <iostream>

#include <CLI/CLI.hpp>

#include "apis/apply.h"
#include "apis/yaml.h"
#include "cmd/mt/app_rootfs.h"
#include "cmd/mt/args.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/manifests.h"
#include "cmd/mt/output.h"
#include "cmd/mt/unified_diff.h"

namespace mentat::mt {
namespace {

// diff's own exit codes: 0 same, 1 different, 2 and up trouble (as GNU diff).
constexpr int kDiffChanges = 1;
constexpr int kDiffTrouble = 2;

int Trouble(int code) { return code == kExitError || code == kExitUsage ? kDiffTrouble : code; }

// The object as a user wrote it: no server-managed metadata, no status.
std::string Comparable(Json obj) {
  if (obj.is_null()) return "";
  obj.erase("status");
  EraseServerOwnedMetadata(obj);
  if (obj.contains("metadata") && obj["metadata"].is_object()) {
    obj["metadata"].erase("managedFields");
  }
  return EncodeYaml(obj);
}

void PrintColoured(const std::string& diff) {
  size_t start = 0;
  while (start < diff.size()) {
    size_t nl = diff.find('\n', start);
    if (nl == std::string::npos) nl = diff.size();
    std::string line = diff.substr(start, nl - start);
    const char* c = nullptr;
    if (line.rfind("---", 0) == 0 || line.rfind("+++", 0) == 0) {
      c = colour::kBold;
    } else if (line.rfind("@@", 0) == 0) {
      c = colour::kCyan;
    } else if (!line.empty() && line[0] == '-') {
      c = colour::kRed;
    } else if (!line.empty() && line[0] == '+') {
      c = colour::kGreen;
    }
    std::cout << (c ? Paint(Stream::kOut, c, line) : line) << "\n";
    start = nl + 1;
  }
}

}  // namespace

int RunDiff(ApiClient& client, const DiffFlags& f) {
  if (f.prune && f.applyset.empty()) {
    UsageError("--prune needs --applyset NAME");
    return kDiffTrouble;
  }
  auto sources = CollectSources(f.files, f.recursive, std::cerr);
  if (!sources) return Trouble(PrintError(sources.error()));
  // A relative rootfs is compared as the digest `mt apply` would send: packed, not uploaded.
  auto packed = ResolveAppRootfs(*sources, RootfsMode::kPackOnly, nullptr, std::cerr);
  if (!packed) return Trouble(PrintError(packed.error()));
  auto documents = ApplyDocuments(*sources);
  if (!documents) return Trouble(PrintError(documents.error()));
  ApplyOptions ao;
  ao.dry_run = true;
  ao.ns = f.ns;
  ao.applyset = f.applyset;
  ao.prune = f.prune;
  auto plan = client.Apply(*documents, ao);
  if (!plan) return Trouble(PrintError(DryRunError(plan.error())));
  // The server accepted every document; the same decoder here finds each object's canonical
  // form, which a dry-run PUT turns into the server's would-be object.
  auto local = CanonicalObjects(*sources, f.ns);
  if (!local) return Trouble(PrintError(local.error()));

  int rc = kExitOk;
  for (const auto& item : plan->value("items", Json::array())) {
    std::string action = item.value("action", "");
    if (action == "unchanged") continue;
    auto kind = KindByName(item.value("kind", ""));
    if (!kind) continue;
    std::string name = item.value("name", ""), ns = item.value("namespace", "");
    std::string ref = RefString(*kind, name) + (ns.empty() ? "" : " (" + ns + ")");
    RequestOptions ro;
    ro.ns = ns;
    Json live, after;
    if (action != "created") {
      auto got = client.Get(std::string(kind->plural), name, ro);
      if (!got && got.error().code() != Code::kNotFound) return Trouble(PrintError(got.error()));
      if (got) live = *got;
    }
    if (action != "pruned") {
      auto it = local->find(ObjectKey{std::string(kind->kind), ns, name});
      if (it == local->end()) {
        PrintError(Error(Code::kInternal, ref +
                                              ": the server's dry run names an object this mt "
                                              "does not find in the manifests (a newer server?)"));
        return kDiffTrouble;
      }
      Json body = it->second;
      if (!f.applyset.empty()) body["metadata"]["labels"]["mentat.io/applyset"] = f.applyset;
      ro.dry_run = true;
      auto would = client.Put(std::string(kind->plural), name, body.dump(), ro);
      if (!would) return Trouble(PrintError(would.error(), ref));
      after = *would;
    }
    std::string diff =
        UnifiedDiff(Comparable(live), Comparable(after), ref + " (live)", ref + " (after apply)");
    rc = kDiffChanges;
    if (diff.empty()) {
      // The server will write it, but nothing a user wrote changes (e.g. only its labels'
      // order): say so rather than print an empty diff.
      std::cout << ref << ": " << action << ", no visible change\n";
      continue;
    }
    PrintColoured(diff);
  }
  std::cout << std::flush;
  return rc;
}

Command AddDiffCommand(CLI::App& app) {
  auto f = std::make_shared<DiffFlags>();
  auto* diff = app.add_subcommand("diff", "show what apply would change, as a unified diff");
  diff->add_option("-f,--filename", f->files, "file, directory or - for stdin")->required();
  diff->add_flag("-R,--recursive", f->recursive, "descend into directories");
  diff->add_option("--applyset", f->applyset, "as apply --applyset");
  diff->add_flag("--prune", f->prune, "also show what apply --prune would delete");
  return {.cli = diff, .connected = [f](const Session& s) {
            f->ns = s.ns_given ? s.ns : "";
            return RunDiff(s.client, *f);
          }};
}

}  // namespace mentat::mt
