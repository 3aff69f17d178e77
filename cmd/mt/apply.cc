// mt apply: one POST /v1/apply for every file given; with --applyset/--prune the server also
// labels the set and deletes what it no longer declares; with --wait, a live rollout display
// until every applied Service is up (service_wait.h). mt run is apply, then that wait, always.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cmd/mt/app_rootfs.h"
#include "cmd/mt/args.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/manifests.h"
#include "cmd/mt/output.h"
#include "cmd/mt/service_wait.h"

namespace mentat::mt {
namespace {

using Clock = std::chrono::steady_clock;

// Applies the manifests of `f` and prints a line per object. The Services applied (not pruned)
// are added to `services`. Returns kExitOk or the exit code of the error it printed.
int ApplyAndReport(ApiClient& client, const ApplyFlags& f, bool dry_run,
                   std::vector<ServiceToWait>* services) {
  auto sources = CollectSources(f.files, f.recursive, std::cerr);
  if (!sources) return PrintError(sources.error());
  // Relative rootfs directories are packed and uploaded first (a dry run uploads nothing);
  // the manifests then name their artifacts.
  auto packed = ResolveAppRootfs(*sources, dry_run ? RootfsMode::kPackOnly : RootfsMode::kUpload,
                                 &client, std::cerr);
  if (!packed) return PrintError(packed.error());
  auto documents = ApplyDocuments(*sources);
  if (!documents) return PrintError(documents.error());
  ApplyOptions ao;
  ao.dry_run = dry_run;
  ao.ns = f.ns;
  ao.applyset = f.applyset;
  ao.prune = f.prune;
  auto res = client.Apply(*documents, ao);
  if (!res) return PrintError(res.error());
  const Json items = res->value("items", Json::array());
  if (items.empty()) {
    std::cerr << Paint(Stream::kErr, colour::kRed, "error: ") << "no objects found in the input\n";
    return kExitError;
  }
  for (const auto& item : items) {
    std::string action = item.value("action", "");
    std::cout << Lower(item.value("kind", "")) << "/" << item.value("name", "") << " " << action
              << (dry_run ? " (server dry run)" : "") << "\n";
    if (item.value("kind", "") == "Service" && action != "pruned") {
      services->push_back({item.value("namespace", ""), item.value("name", "")});
    }
  }
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

int RunApply(ApiClient& client, const ApplyFlags& f) {
  if (!f.dry_run.empty() && f.dry_run != "server" && f.dry_run != "none") {
    return UsageError("--dry-run must be \"server\" or \"none\"");
  }
  bool dry_run = f.dry_run == "server";
  if (f.prune && f.applyset.empty()) {
    return UsageError(
        "--prune needs --applyset NAME: mt prunes only the objects of a named "
        "applyset (labelled mentat.io/applyset=NAME), never by guesswork");
  }
  if (f.wait && dry_run) return UsageError("--wait cannot be combined with --dry-run");
  auto timeout = ParseDuration(f.timeout);
  if (!timeout) return UsageError("--timeout: " + timeout.error().message());

  auto start = Clock::now();  // --timeout counts from here
  std::vector<ServiceToWait> services;
  if (int rc = ApplyAndReport(client, f, dry_run, &services); rc != kExitOk) return rc;
  if (!f.wait) return kExitOk;
  if (services.empty()) {
    std::cout << "no services to wait for\n";
    return kExitOk;
  }
  return WaitForServices(client, services, *timeout, start);
}

int RunRun(ApiClient& client, const ApplyFlags& f) {
  auto timeout = ParseDuration(f.timeout);
  if (!timeout) return UsageError("--timeout: " + timeout.error().message());
  auto start = Clock::now();
  std::vector<ServiceToWait> services;
  if (int rc = ApplyAndReport(client, f, /*dry_run=*/false, &services); rc != kExitOk) return rc;
  if (services.empty()) {
    std::cout << "no services to run\n";
    return kExitOk;
  }
  if (int rc = WaitForServices(client, services, *timeout, start); rc != kExitOk) return rc;
  // Where each runs, as `nomad job run` ends with its allocations.
  for (const auto& s : services) {
    RequestOptions ro;
    ro.ns = s.ns;
    ro.label_selector = std::string(kLabelService) + "=" + s.name;
    auto allocs = client.List("allocations", ro);
    if (!allocs) continue;
    for (const auto& a : allocs->value("items", Json::array())) {
      const Json& st = a.value("status", Json::object());
      std::cout << "  " << NameOf(a) << " on node "
                << a.value("spec", Json::object()).value("nodeName", "<none>") << ", "
                << st.value("phase", "Pending")
                << (st.contains("pid") ? ", pid " + std::to_string(st.value("pid", 0)) : "") << "\n";
    }
  }
  return kExitOk;
}

Command AddApplyCommand(CLI::App& app) {
  auto f = std::make_shared<ApplyFlags>();
  auto* apply = app.add_subcommand("apply", "create or update objects from manifests");
  apply->add_option("-f,--filename", f->files, "file, directory or - for stdin")->required();
  apply->add_flag("-R,--recursive", f->recursive, "descend into directories");
  apply->add_option("--dry-run", f->dry_run, "\"server\": validate and admit, persist nothing")
      ->expected(0, 1)
      ->default_str("server");
  apply->add_flag("--wait", f->wait, "wait until every applied Service is Ready");
  apply->add_option("--timeout", f->timeout, "how long --wait waits (e.g. 90s, 5m)")
      ->capture_default_str();
  apply->add_option("--applyset", f->applyset,
                    "label every applied object mentat.io/applyset=NAME");
  apply->add_flag("--prune", f->prune,
                  "delete the applyset's objects that the manifests no longer declare");
  return {.cli = apply, .connected = [f](const Session& s) {
            f->ns = s.ns_given ? s.ns : "";
            return RunApply(s.client, *f);
          }};
}

// mt run: seed 000's boot flow ("mt run service.yaml"), as `nomad job run`.
Command AddRunCommand(CLI::App& app) {
  auto f = std::make_shared<ApplyFlags>();
  f->timeout = "5m";
  auto files = std::make_shared<std::vector<std::string>>();
  auto* run = app.add_subcommand(
      "run", "apply manifests, then follow each Service live until it is up (or say why not)");
  run->add_option("file", *files, "file or directory (the same as -f)");
  run->add_option("-f,--filename", f->files, "file, directory or - for stdin");
  run->add_flag("-R,--recursive", f->recursive, "descend into directories");
  run->add_option("--timeout", f->timeout, "give up after this long (e.g. 90s, 5m)")
      ->capture_default_str();
  return {.cli = run, .connected = [f, files](const Session& s) {
            f->files.insert(f->files.begin(), files->begin(), files->end());
            if (f->files.empty()) {
              return UsageError("run needs a manifest: mt run FILE, or -f FILE");
            }
            f->ns = s.ns_given ? s.ns : "";
            return RunRun(s.client, *f);
          }};
}

}  // namespace mentat::mt
