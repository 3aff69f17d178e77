#include "cmd/mt/service_wait.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "cmd/mt/agents.h"
#include "cmd/mt/args.h"
#include "cmd/mt/columns.h"
#include "cmd/mt/describe.h"
#include "apis/list_watch.h"
#include "cmd/mt/output.h"
#include "cmd/mt/progress.h"

namespace mentat::mt {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often the allocations are looked at while no service event comes (the up-time window
// passes without one).
constexpr milliseconds kTick{500};
constexpr int kStderrLines = 10;
constexpr size_t kEvents = 5;

// One allocation as seen across looks: its restarts when first seen, and since when it has been
// seen Ready with no restart in between.
struct AllocSeen {
  int first_restarts = -1;
  int last_restarts = 0;
  std::optional<Clock::time_point> up_since;
};

enum class State { kWaiting, kUp, kFailed };

struct Verdict {
  State state = State::kWaiting;
  ProgressLine line;
  std::string failure;        // why it failed or is stuck, one line
  std::string crashed_alloc;  // the allocation whose stderr tells more
};

class ServiceWaiter {
 public:
  ServiceWaiter(ApiClient& client, std::vector<ServiceToWait> services)
      : client_(client), services_(std::move(services)) {}

  int Run(milliseconds timeout, Clock::time_point start);

 private:
  Verdict Judge(const ServiceToWait& s, const Json* svc, const std::vector<Json>& allocs);
  // Looks at every allocation; sets `v` failed on a Failed allocation or a crash loop.
  void CheckAllocations(const std::vector<Json>& allocs, Verdict& v);
  bool AllUp(const std::vector<Json>& allocs) const;
  void Explain(const ServiceToWait& s, const Json* svc, const Verdict& v);

  ApiClient& client_;
  std::vector<ServiceToWait> services_;
  std::map<std::string, AllocSeen> seen_;  // by allocation uid
};

int RestartsOf(const Json& alloc) {
  return alloc.value("status", Json::object()).value("restarts", 0);
}

bool SetsMinHealthyTime(const Json& svc) {
  const Json& deploy = svc.value("spec", Json::object()).value("deploy", Json::object());
  return deploy.is_object() && deploy.contains("min_healthy_time");
}

// How the allocation's last run ended ("exited with code 1"), or else its message.
std::string LastExit(const Json& status, const std::string& message) {
  if (status.contains("exitCode")) return "exited with code " + status["exitCode"].dump();
  if (status.contains("signal")) return "killed by signal " + status["signal"].dump();
  return message;
}

// The service's first deploy: its first revision rolling out, none ever stable before.
bool FirstDeploy(const Json& status) {
  return status.value("rollout", Json::object()).value("revision", 0) == 1 &&
         status.value("stableRevision", "").empty();
}

void ServiceWaiter::CheckAllocations(const std::vector<Json>& allocs, Verdict& v) {
  const auto now = Clock::now();
  for (const auto& a : allocs) {
    AllocSeen& seen = seen_[a.value("metadata", Json::object()).value("uid", NameOf(a))];
    const Json& st = a.value("status", Json::object());
    const int restarts = RestartsOf(a);
    if (seen.first_restarts < 0) seen.first_restarts = restarts;
    if (restarts != seen.last_restarts) seen.up_since.reset();
    seen.last_restarts = restarts;
    const bool up = st.value("ready", false) && st.value("phase", "") == "Running";
    if (!up) seen.up_since.reset();
    if (up && !seen.up_since) seen.up_since = now;
    const std::string phase = st.value("phase", "");
    if (v.state == State::kFailed) {
      // A failed rollout: the stderr of an allocation that failed or restarts tells more.
      if (v.crashed_alloc.empty() && (phase == "Failed" || phase == "Restarting" || restarts > 0)) {
        v.crashed_alloc = NameOf(a);
      }
      continue;
    }
    const std::string message = st.value("message", st.value("phase", "Pending"));
    if (phase == "Failed") {
      v.state = State::kFailed;
      v.failure = NameOf(a) + " failed: " + message;
      v.crashed_alloc = NameOf(a);
    } else if (restarts - seen.first_restarts >= kCrashLoopRestarts) {
      v.state = State::kFailed;
      v.failure = NameOf(a) + " is crash-looping (" + std::to_string(restarts) + " restarts): " +
                  LastExit(st, message);
      v.crashed_alloc = NameOf(a);
    }
  }
}

bool ServiceWaiter::AllUp(const std::vector<Json>& allocs) const {
  const auto now = Clock::now();
  return std::all_of(allocs.begin(), allocs.end(), [&](const Json& a) {
    auto it = seen_.find(a.value("metadata", Json::object()).value("uid", NameOf(a)));
    return it != seen_.end() && it->second.up_since && now - *it->second.up_since >= kFirstDeployUpTime;
  });
}

Verdict ServiceWaiter::Judge(const ServiceToWait& s, const Json* svc, const std::vector<Json>& allocs) {
  Verdict v;
  v.line.name = "service/" + s.name;
  if (!svc) {
    v.state = State::kFailed;
    v.line.ready = "-";
    v.line.phase = "NotFound";
    v.failure = v.line.detail = "the service was deleted";
    return v;
  }
  const Json& st = svc->value("status", Json::object());
  const int count = svc->value("spec", Json::object()).value("count", 1);
  v.line.ready = std::to_string(st.value("readyReplicas", 0)) + "/" + std::to_string(count);
  if (!StatusIsCurrent(*svc)) {
    v.line.phase = "Pending";
    v.failure = v.line.detail = "waiting for the controller";
    return v;
  }
  v.line.phase = st.value("phase", "Pending");
  v.failure = v.line.detail = st.value("message", "");
  const Json& rollout = st.value("rollout", Json::object());
  if (v.line.phase == "Complete" || count == 0) {
    v.state = State::kUp;
  } else if (rollout.value("state", "") == "Failed") {
    v.state = State::kFailed;
    v.failure = rollout.value("message", "the rollout failed");
  }
  CheckAllocations(allocs, v);
  if (v.state != State::kWaiting) return v;
  const Json* ready = FindCondition(*svc, "Ready");
  if (!ready || ready->value("status", "") != "True") return v;
  if (rollout.value("state", "") == "Complete") {
    v.state = State::kUp;
  } else if (FirstDeploy(st) && !SetsMinHealthyTime(*svc)) {
    // A first deploy with no min_healthy_time: up once every allocation stayed up a moment.
    if (AllUp(allocs)) {
      v.state = State::kUp;
    } else {
      v.line.detail = "ready; checking that it stays up for " + FormatDuration(kFirstDeployUpTime);
    }
  } else {
    v.line.detail = "ready; the rollout has yet to call it healthy: " + rollout.value("message", "");
  }
  if (v.state == State::kUp) v.line.detail = "ready";
  v.line.done = v.state == State::kUp;
  return v;
}

// The allocations of service `s` that its current count keeps, from a list of allocations.
std::vector<Json> AllocationsOf(const ServiceToWait& s, const Json* svc, const Json& list) {
  std::vector<Json> out;
  if (!svc) return out;
  const int count = svc->value("spec", Json::object()).value("count", 1);
  for (const auto& a : list.value("items", Json::array())) {
    const Json& meta = a.value("metadata", Json::object());
    if (NamespaceOf(a) != s.ns || meta.contains("deletionTimestamp") ||
        meta.value("labels", Json::object()).value(std::string(kLabelService), "") != s.name ||
        a.value("spec", Json::object()).value("index", 0) >= count) {
      continue;
    }
    out.push_back(a);
  }
  return out;
}

void ServiceWaiter::Explain(const ServiceToWait& s, const Json* svc, const Verdict& v) {
  std::cerr << "\n" << v.line.name << " (" << v.line.ready << " ready, " << v.line.phase
            << "): " << v.failure << "\n";
  if (!v.crashed_alloc.empty()) {
    auto tail = AllocationLogTail(client_, s.ns, v.crashed_alloc, "stderr", kStderrLines);
    if (!tail) {
      std::cerr << "  (its stderr could not be read: " << tail.error().message() << ")\n";
    } else if (tail->empty()) {
      std::cerr << "  " << v.crashed_alloc << " wrote nothing to stderr\n";
    } else {
      std::cerr << "  the last lines of " << v.crashed_alloc << "'s stderr:\n";
      std::string text = *tail;
      if (text.back() != '\n') text += '\n';
      for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
        std::cerr << "    " << text.substr(at, nl - at) << "\n";
      }
    }
  }
  if (!svc) return;
  std::cerr << ConditionsText(*svc) << EventsText(client_, *svc, kEvents);
}

int ServiceWaiter::Run(milliseconds timeout, Clock::time_point start) {
  const auto end = start + timeout;
  std::set<std::string> namespaces;
  for (const auto& s : services_) namespaces.insert(s.ns);
  RequestOptions ro;
  if (namespaces.size() == 1) ro.ns = *namespaces.begin();
  ListWatcher follower(client_, "services", ro);
  ProgressDisplay display(IsTerminal(Stream::kOut), TerminalWidth());
  follower.set_notice([&](const std::string& note) { display.Note(note); });
  if (auto listed = follower.List(); !listed) return PrintError(listed.error(), "waiting for the services");
  auto service = [&](const ServiceToWait& s) -> const Json* {
    auto it = follower.objects().find(s.ns + "/" + s.name);
    return it == follower.objects().end() ? nullptr : &it->second;
  };
  while (true) {
    auto allocs = client_.List("allocations", ro);
    if (!allocs) return PrintError(allocs.error(), "waiting for the services");
    std::vector<Verdict> verdicts;
    std::vector<ProgressLine> lines;
    for (const auto& s : services_) {
      verdicts.push_back(Judge(s, service(s), AllocationsOf(s, service(s), *allocs)));
      lines.push_back(verdicts.back().line);
    }
    display.Update(lines);
    const bool all_up = std::all_of(verdicts.begin(), verdicts.end(),
                                    [](const Verdict& v) { return v.state == State::kUp; });
    const bool failed = std::any_of(verdicts.begin(), verdicts.end(),
                                    [](const Verdict& v) { return v.state == State::kFailed; });
    if (all_up) {
      auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
      std::cout << services_.size() << (services_.size() == 1 ? " service" : " services")
                << " ready after " << FormatDuration(took / 100 * 100) << "\n";
      return kExitOk;
    }
    if (failed || Clock::now() >= end) {
      int stuck = 0;
      for (const auto& v : verdicts) stuck += v.state != State::kUp;
      std::cerr << Paint(Stream::kErr, colour::kRed, "error: ")
                << (failed ? std::string("not ready: ")
                           : "timed out after " + FormatDuration(timeout) + " waiting for ")
                << stuck << " of " << services_.size()
                << (services_.size() == 1 ? " service" : " services") << "\n";
      for (size_t i = 0; i < services_.size(); ++i) {
        if (verdicts[i].state != State::kUp) Explain(services_[i], service(services_[i]), verdicts[i]);
      }
      return kExitError;
    }
    follower.set_deadline(std::min(end, Clock::now() + kTick));
    auto ran = follower.Run([&](const std::string&, const Json& obj) {
      for (const auto& s : services_) {
        if (s.ns == NamespaceOf(obj) && s.name == NameOf(obj)) return false;  // look now
      }
      return true;
    });
    if (!ran) return PrintError(ran.error(), "waiting for the services");
  }
}

}  // namespace

int WaitForServices(ApiClient& client, const std::vector<ServiceToWait>& services,
                    milliseconds timeout, Clock::time_point start) {
  return ServiceWaiter(client, services).Run(timeout, start);
}

}  // namespace mentat::mt
