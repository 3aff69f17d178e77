// mt rollout status|history|undo SERVICE, after kubectl rollout. The controller records each
// spec template as a ServiceRevision and reports the current rollout in status.rollout; these
// commands read them, and undo writes an older template back as the Service's spec.
#include <algorithm>
#include <iostream>
#include <set>

#include <CLI/CLI.hpp>

#include "apis/service.h"
#include "apis/yaml.h"
#include "cmd/mt/args.h"
#include "cmd/mt/commands.h"
#include "apis/list_watch.h"
#include "cmd/mt/output.h"
#include "cmd/mt/table.h"

namespace mentat::mt {
namespace {

int64_t Number(const Json& revision) {
  const Json& spec = revision.value("spec", Json::object());
  return spec.value("revision", int64_t{0});
}

Result<std::vector<Json>> Revisions(ApiClient& client, const std::string& ns, const std::string& service) {
  RequestOptions ro;
  ro.ns = ns;
  ro.label_selector = std::string(kLabelService) + "=" + service;
  MT_ASSIGN_OR_RETURN(Json list, client.List("servicerevisions", ro));
  std::vector<Json> items = list.value("items", Json::array());
  std::sort(items.begin(), items.end(), [](const Json& a, const Json& b) { return Number(a) < Number(b); });
  return items;
}

// "args, env": the template fields that differ from the previous revision's.
std::string Changes(const Json& prev, const Json& cur) {
  std::set<std::string> keys;
  for (auto it = prev.begin(); it != prev.end(); ++it) keys.insert(it.key());
  for (auto it = cur.begin(); it != cur.end(); ++it) keys.insert(it.key());
  std::string out;
  for (const auto& k : keys) {
    if (prev.value(k, Json()) != cur.value(k, Json())) out += (out.empty() ? "" : ", ") + k;
  }
  return out.empty() ? "(none)" : out;
}

// "exec /bin/sleep 100" or "docker nginx:1.27": what the first kept revision runs.
std::string Summary(const Json& tmpl) {
  std::string out = tmpl.value("driver", "");
  for (const char* f : {"image", "command", "rootfs"}) {
    if (tmpl.contains(f) && tmpl[f].is_string()) {
      out += " " + tmpl[f].get<std::string>();
      break;
    }
  }
  for (const auto& a : tmpl.value("args", Json::array())) out += " " + (a.is_string() ? a.get<std::string>() : a.dump());
  return out.size() > 60 ? out.substr(0, 57) + "..." : out;
}

// The service and its revisions, oldest first.
Result<std::pair<Json, std::vector<Json>>> Load(ApiClient& client, const RolloutFlags& f) {
  RequestOptions ro;
  ro.ns = f.ns;
  MT_ASSIGN_OR_RETURN(Json svc, client.Get("services", f.name, ro));
  MT_ASSIGN_OR_RETURN(auto revisions, Revisions(client, f.ns, f.name));
  return std::make_pair(std::move(svc), std::move(revisions));
}

int Status(ApiClient& client, const RolloutFlags& f) {
  std::chrono::milliseconds timeout{0};
  if (!f.timeout.empty()) {
    auto t = ParseDuration(f.timeout);
    if (!t) return UsageError("--timeout: " + t.error().message());
    timeout = *t;
  }
  RequestOptions ro;
  ro.ns = f.ns;
  ListWatcher follower(client, "services", ro);
  if (timeout.count() > 0) follower.set_deadline(ListWatcher::Clock::now() + timeout);
  follower.set_notice([](const std::string& note) { std::cerr << note << "\n"; });
  auto listed = follower.List();
  if (!listed) return PrintError(listed.error());
  const std::string key = f.ns + "/" + f.name;
  const std::string what = "service/" + f.name;

  std::string said;  // the last progress line, printed once each
  int rc = -1;
  auto check = [&](const Json* svc) {
    if (!svc) {
      std::cerr << Paint(Stream::kErr, colour::kRed, "error: ") << what << " was deleted\n";
      rc = kExitError;
      return;
    }
    const Json& meta = svc->value("metadata", Json::object());
    const Json& st = svc->value("status", Json::object());
    const Json& rollout = st.value("rollout", Json::object());
    std::string line;
    if (st.value("observedGeneration", int64_t{0}) < meta.value("generation", int64_t{1}) ||
        rollout.empty()) {
      line = "Waiting for the controller to see generation " +
             std::to_string(meta.value("generation", int64_t{1})) + " of " + what + "...";
    } else if (rollout.value("state", "") == "Complete") {
      std::cout << what << ": " << rollout.value("message", "rolled out") << "\n";
      rc = kExitOk;
      return;
    } else if (rollout.value("state", "") == "Failed") {
      std::cerr << Paint(Stream::kErr, colour::kRed, "error: ") << what << ": "
                << rollout.value("message", "the rollout failed") << "\n";
      rc = kExitError;
      return;
    } else {
      line = "Waiting for the rollout of " + what + " to finish: " + rollout.value("message", "");
    }
    if (line != said) std::cout << line << "\n" << std::flush;
    said = line;
  };
  auto current = [&]() -> const Json* {
    auto it = follower.objects().find(key);
    return it == follower.objects().end() ? nullptr : &it->second;
  };
  if (!current()) return PrintError(Error(Code::kNotFound, "Service \"" + f.name + "\" not found"));
  check(current());
  if (rc >= 0) return rc;
  auto ran = follower.Run([&](const std::string& type, const Json& obj) {
    if (NameOf(obj) != f.name) return true;
    check(type == "DELETED" ? nullptr : current());
    return rc < 0;
  });
  if (!ran) return PrintError(ran.error());
  if (rc >= 0) return rc;
  std::cerr << Paint(Stream::kErr, colour::kRed, "error: ") << "timed out after "
            << FormatDuration(timeout) << " waiting for the rollout of " << what << "; last seen: "
            << (said.empty() ? "no progress" : said) << "\n";
  return kExitError;
}

int History(ApiClient& client, const RolloutFlags& f) {
  auto loaded = Load(client, f);
  if (!loaded) return PrintError(loaded.error());
  auto& [svc, revisions] = *loaded;
  if (f.revision > 0) {
    for (const auto& r : revisions) {
      if (Number(r) != f.revision) continue;
      std::cout << "service/" << f.name << " revision " << f.revision << "\n"
                << EncodeYaml(r["spec"].value("template", Json::object()));
      return kExitOk;
    }
    return PrintError(Error(Code::kNotFound, "service/" + f.name + " has no revision " +
                                                 std::to_string(f.revision) + " (see mt rollout history " +
                                                 f.name + ")"));
  }
  if (revisions.empty()) {
    std::cerr << "No revisions of service/" << f.name << " yet.\n";
    return kExitOk;
  }
  const Json& st = svc.value("status", Json::object());
  std::string current = st.value("rollout", Json::object()).value("revisionName", "");
  std::string stable = st.value("stableRevision", "");
  Table t({"REVISION", "ROLLOUT", "AGE", "CHANGE"});
  const Json* prev = nullptr;
  for (const auto& r : revisions) {
    const Json& tmpl = r["spec"].value("template", Json::object());
    std::string outcome = r.value("status", Json::object()).value("outcome", "");
    if (NameOf(r) == current && outcome.empty()) outcome = "Progressing";
    std::string marks;
    if (NameOf(r) == current) marks += " (current)";
    if (NameOf(r) == stable && NameOf(r) != current) marks += " (stable)";
    auto created = ParseTime(r["metadata"].value("creationTimestamp", ""));
    t.Add({std::to_string(Number(r)), (outcome.empty() ? "-" : outcome) + marks,
           created ? HumanAge(std::chrono::system_clock::now() - *created) : "?",
           prev ? Changes((*prev)["spec"].value("template", Json::object()), tmpl) : Summary(tmpl)});
    prev = &r;
  }
  std::cout << "service/" << f.name << "\n" << t.Render();
  return kExitOk;
}

int Undo(ApiClient& client, const RolloutFlags& f) {
  auto loaded = Load(client, f);
  if (!loaded) return PrintError(loaded.error());
  auto& [svc, revisions] = *loaded;
  RequestOptions ro;
  ro.ns = f.ns;
  const Json& spec = svc["spec"];
  const Json tmpl = TaskTemplate(spec);
  // The revision running now is the one holding the spec's template.
  int64_t current = 0;
  for (const auto& r : revisions) {
    if (r["spec"].value("template", Json()) == tmpl) current = Number(r);
  }
  const Json* target = nullptr;
  for (const auto& r : revisions) {
    if (f.to_revision > 0 ? Number(r) == f.to_revision : Number(r) != current) target = &r;
    if (f.to_revision > 0 && target) break;
  }
  if (!target) {
    return PrintError(Error(Code::kNotFound,
                            f.to_revision > 0
                                ? "service/" + f.name + " has no revision " + std::to_string(f.to_revision) +
                                      " (see mt rollout history " + f.name + ")"
                                : "service/" + f.name + " has no earlier revision to roll back to"));
  }
  if (Number(*target) == current) {
    std::cout << "service/" << f.name << " already runs revision " << current << "; nothing to do\n";
    return kExitOk;
  }
  Json new_spec = WithTaskTemplate(spec, (*target)["spec"]["template"]);
  // Conditional on the version read: an apply in between is not silently overwritten.
  Json body = {{"apiVersion", svc["apiVersion"]},
               {"kind", "Service"},
               {"metadata", svc["metadata"]},
               {"spec", new_spec}};
  auto put = client.Put("services", f.name, body.dump(), ro);
  if (!put) return PrintError(put.error());
  std::cout << "service/" << f.name << " rolled back to revision " << Number(*target) << "\n";
  return kExitOk;
}

}  // namespace

int RunRollout(ApiClient& client, const RolloutFlags& f) {
  if (f.action == "status") return Status(client, f);
  if (f.action == "history") return History(client, f);
  if (f.action == "undo") return Undo(client, f);
  return UsageError("rollout needs status, history or undo");
}

Command AddRolloutCommand(CLI::App& app) {
  auto f = std::make_shared<RolloutFlags>();
  auto* rollout = app.add_subcommand("rollout", "follow, list or undo a service's spec rollouts");
  rollout->require_subcommand(1);
  auto* status = rollout->add_subcommand(
      "status", "wait until the service's current rollout completes or fails");
  status->add_option("service", f->name, "the service")->required();
  status->add_option("--timeout", f->timeout,
                     "give up after this long (e.g. 5m; default: wait as long as it takes)");
  auto* history = rollout->add_subcommand("history", "list the service's spec revisions");
  history->add_option("service", f->name, "the service")->required();
  history->add_option("--revision", f->revision, "print this revision's spec template")
      ->check(CLI::PositiveNumber);
  auto* undo = rollout->add_subcommand(
      "undo", "roll the service back to its previous (or a given) revision");
  undo->add_option("service", f->name, "the service")->required();
  undo->add_option("--to-revision", f->to_revision, "the revision to go back to")
      ->check(CLI::PositiveNumber);
  return {.cli = rollout, .connected = [f, status, history](const Session& s) {
            f->ns = s.ns;
            f->action = status->parsed() ? "status" : history->parsed() ? "history" : "undo";
            return RunRollout(s.client, *f);
          }};
}

}  // namespace mentat::mt
