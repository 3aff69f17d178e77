// mt apply: one POST /v1/apply for every file given; with --applyset/--prune the server also
// labels the set and deletes what it no longer declares; with --wait, a live rollout display
// until every applied Service is Ready.
#include <iostream>
#include <set>

#include "cmd/mt/app_rootfs.h"
#include "cmd/mt/args.h"
#include "cmd/mt/columns.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/follow.h"
#include "cmd/mt/manifests.h"
#include "cmd/mt/output.h"
#include "cmd/mt/progress.h"

namespace mentat::mt {
namespace {

// Ready for its current spec: the controller has seen this generation and says Ready (or, for
// run-to-completion services, that every allocation completed).
bool ServiceDone(const Json& svc) {
  if (!StatusIsCurrent(svc)) return false;
  if (svc.value("status", Json::object()).value("phase", "") == "Complete") return true;
  const Json* ready = FindCondition(svc, "Ready");
  return ready && ready->value("status", "") == "True";
}

ProgressLine LineFor(const std::string& ref, const Json* svc) {
  ProgressLine l;
  l.name = ref;
  if (!svc) {
    l.ready = "-";
    l.phase = "NotFound";
    l.detail = "the service was deleted";
    return l;
  }
  const Json& st = svc->value("status", Json::object());
  int count = svc->value("spec", Json::object()).value("count", 1);
  l.ready = std::to_string(st.value("readyReplicas", 0)) + "/" + std::to_string(count);
  l.done = ServiceDone(*svc);
  if (!StatusIsCurrent(*svc)) {
    l.phase = "Pending";
    l.detail = "waiting for the controller";
  } else {
    l.phase = st.value("phase", "Pending");
    l.detail = l.done ? "ready" : st.value("message", "");
  }
  return l;
}

// Follows the applied services until all are done or the timeout passes.
int WaitForServices(ApiClient& client, const std::vector<ObjectKey>& services,
                    std::chrono::milliseconds timeout, KindFollower::Clock::time_point start) {
  std::set<std::string> namespaces;
  for (const auto& k : services) namespaces.insert(k.ns);
  RequestOptions ro;
  if (namespaces.size() == 1) ro.ns = *namespaces.begin();
  KindFollower follower(client, "services", ro);
  follower.set_deadline(start + timeout);
  ProgressDisplay display(IsTerminal(Stream::kOut), TerminalWidth());
  follower.set_notice([&](const std::string& note) { display.Note(note); });

  auto state = [&](bool draw) {
    std::vector<ProgressLine> lines;
    bool all = true;
    for (const auto& k : services) {
      auto it = follower.objects().find(k.ns + "/" + k.name);
      lines.push_back(
          LineFor("service/" + k.name, it == follower.objects().end() ? nullptr : &it->second));
      all = all && lines.back().done;
    }
    if (draw) display.Update(lines);
    return all;
  };
  auto listed = follower.List();
  if (!listed) return PrintError(listed.error(), "waiting for the services");
  bool done = state(true);
  if (!done) {
    auto ran = follower.Run([&](const std::string&, const Json& obj) {
      bool ours = false;
      for (const auto& k : services)
        ours = ours || (k.ns == NamespaceOf(obj) && k.name == NameOf(obj));
      return !(ours && state(true));
    });
    if (!ran) return PrintError(ran.error(), "waiting for the services");
    done = *ran;
  }
  auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(KindFollower::Clock::now() - start);
  if (done) {
    std::cout << services.size() << (services.size() == 1 ? " service" : " services")
              << " ready after " << FormatDuration(took / 100 * 100) << "\n";
    return kExitOk;
  }
  std::vector<std::string> stuck;
  for (const auto& k : services) {
    auto it = follower.objects().find(k.ns + "/" + k.name);
    if (it == follower.objects().end()) {
      stuck.push_back("service/" + k.name + ": not found (deleted?)");
    } else if (!ServiceDone(it->second)) {
      auto l = LineFor("service/" + k.name, &it->second);
      stuck.push_back(l.name + " (" + l.ready + " ready, " + l.phase +
                      "): " + WhyNotReady(it->second));
    }
  }
  std::cerr << Paint(Stream::kErr, colour::kRed, "error: ") << "timed out after "
            << FormatDuration(timeout) << " waiting for " << stuck.size() << " of "
            << services.size() << (services.size() == 1 ? " service" : " services")
            << " to be ready:\n";
  for (const auto& s : stuck) std::cerr << "  " << s << "\n";
  return kExitError;
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

  auto start = KindFollower::Clock::now();  // --timeout counts from here
  auto sources = CollectSources(f.files, f.recursive);
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
  std::vector<ObjectKey> services;
  for (const auto& item : items) {
    std::string action = item.value("action", "");
    std::cout << Lower(item.value("kind", "")) << "/" << item.value("name", "") << " " << action
              << (dry_run ? " (server dry run)" : "") << "\n";
    if (item.value("kind", "") == "Service" && action != "pruned") {
      services.push_back({"Service", item.value("namespace", ""), item.value("name", "")});
    }
  }
  std::cout << std::flush;
  if (!f.wait) return kExitOk;
  if (services.empty()) {
    std::cout << "no services to wait for\n";
    return kExitOk;
  }
  return WaitForServices(client, services, *timeout, start);
}

}  // namespace mentat::mt
