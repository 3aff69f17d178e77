// mt apply: one POST /v1/apply for every file given; with --applyset/--prune the server also
// labels the set and deletes what it no longer declares; with --wait, a live rollout display
// until every applied Service is up (service_wait.h). mt run is apply, then that wait, always.
#include <iostream>

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

}  // namespace mentat::mt
