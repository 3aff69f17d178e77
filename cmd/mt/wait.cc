// mt wait: until objects have a condition (--for=condition=Ready[=True|False]) or are gone
// (--for=delete). Objects need not exist yet: it lists the kind and watches from the list's
// revision, so it sees them appear. On timeout it says what it waited for and what it saw last.
#include <algorithm>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cmd/mt/args.h"
#include "cmd/mt/columns.h"
#include "cmd/mt/commands.h"
#include "apis/list_watch.h"
#include "cmd/mt/output.h"

namespace mentat::mt {
namespace {

struct Goal {
  bool deletion = false;
  std::string type;             // condition type, e.g. "Ready"
  std::string status = "True";  // the condition status wanted
  std::string Describe() const { return deletion ? "be deleted" : "be " + type + "=" + status; }
};

Result<Goal> ParseGoal(const std::string& text) {
  Goal g;
  if (Lower(text) == "delete") {
    g.deletion = true;
    return g;
  }
  const std::string prefix = "condition=";
  if (Lower(text).rfind(prefix, 0) != 0 || text.size() == prefix.size()) {
    return InvalidArgument(
        "--for must be condition=TYPE[=True|False] (e.g. condition=Ready) "
        "or delete, got \"" +
        text + "\"");
  }
  g.type = text.substr(prefix.size());
  auto eq = g.type.find('=');
  if (eq != std::string::npos) {
    std::string v = Lower(g.type.substr(eq + 1));
    g.type = g.type.substr(0, eq);
    if (v != "true" && v != "false") {
      return InvalidArgument("--for=condition=" + g.type + "=" +
                             text.substr(prefix.size() + eq + 1) +
                             ": the status must be True or False");
    }
    g.status = v == "true" ? "True" : "False";
  }
  return g;
}

bool Met(const Goal& g, const Json* obj) {
  if (g.deletion) return obj == nullptr;
  if (!obj || !StatusIsCurrent(*obj)) return false;
  const Json* c = FindCondition(*obj, g.type);
  return c && Lower(c->value("status", "")) == Lower(g.status);
}

std::string LastSeen(const Goal& g, const Json* obj) {
  if (!obj) return "it does not exist";
  if (g.deletion) return "it still exists";
  const Json& st = obj->value("status", Json::object());
  std::string out = "phase " + st.value("phase", std::string("<none>"));
  if (!StatusIsCurrent(*obj)) out += " (status not yet updated for the current spec)";
  const Json conditions = st.value("conditions", Json::array());
  if (conditions.empty()) return out + "; no conditions";
  std::vector<std::string> said;  // conditions often share a message: say it once
  for (const auto& c : conditions) {
    out += "; " + c.value("type", "") + "=" + c.value("status", "") + " (" + c.value("reason", "") +
           ")";
    std::string message = c.value("message", "");
    if (!message.empty() && std::find(said.begin(), said.end(), message) == said.end()) {
      out += ": " + message;
      said.push_back(message);
    }
  }
  return out;
}

}  // namespace

int RunWait(ApiClient& client, const WaitFlags& f) {
  if (f.for_.empty()) return UsageError("--for is required: condition=Ready, or delete");
  auto goal = ParseGoal(f.for_);
  if (!goal) return UsageError(goal.error().message());
  auto refs = ParseRefs(f.args, /*names_optional=*/false);
  if (!refs) return UsageError(refs.error().message());
  auto timeout = ParseDuration(f.timeout);
  if (!timeout) return UsageError("--timeout: " + timeout.error().message());
  // One deadline for all of them, as kubectl wait.
  auto deadline = ListWatcher::Clock::now() + *timeout;

  for (const auto& ref : *refs) {
    std::string ns = ref.kind.namespaced ? f.ns : "";
    std::string key = ns + "/" + ref.name;
    std::string what = RefString(ref.kind, ref.name);
    RequestOptions ro;
    ro.ns = ns;
    ListWatcher follower(client, std::string(ref.kind.plural), ro);
    follower.set_deadline(deadline);
    follower.set_notice([](const std::string& note) { std::cerr << note << "\n"; });
    auto current = [&]() -> const Json* {
      auto it = follower.objects().find(key);
      return it == follower.objects().end() ? nullptr : &it->second;
    };
    auto listed = follower.List();
    if (!listed) return PrintError(listed.error());
    bool met = Met(*goal, current());
    if (!met) {
      auto ran = follower.Run([&](const std::string&, const Json& obj) {
        if (NameOf(obj) != ref.name) return true;
        return !Met(*goal, current());
      });
      if (!ran) return PrintError(ran.error());
      met = *ran;
    }
    if (!met) {
      std::cerr << Paint(Stream::kErr, colour::kRed, "error: ") << "timed out after "
                << FormatDuration(*timeout) << " waiting for " << what << " to " << goal->Describe()
                << "; last seen: " << LastSeen(*goal, current()) << "\n";
      return kExitError;
    }
    std::cout << what << (goal->deletion ? " deleted" : " condition met") << "\n" << std::flush;
  }
  return kExitOk;
}

Command AddWaitCommand(CLI::App& app) {
  auto f = std::make_shared<WaitFlags>();
  auto* wait = app.add_subcommand("wait", "wait for a condition, or a deletion");
  wait->add_option("resources", f->args, "KIND/NAME... or KIND NAME...")->required();
  wait->add_option("--for", f->for_, "condition=Ready[=True|False], or delete")->required();
  wait->add_option("--timeout", f->timeout, "give up after this long (e.g. 90s, 5m)")
      ->capture_default_str();
  return {.cli = wait, .connected = [f](const Session& s) {
            f->ns = s.ns;
            return RunWait(s.client, *f);
          }};
}

}  // namespace mentat::mt
