// mt logs: a service's or an allocation's output, read from the agent of the node it runs on
// (the Node's status.agentAddress), with the same token and CA as the server. With -f it
// follows: across restarts of the task (the log file is appended), across a new allocation in
// the same slot (the file starts over), and across agent restarts (it reconnects from the last
// byte it had). For a service, new allocations are picked up as they appear.
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "apis/object.h"
#include "cmd/mt/agents.h"
#include "cmd/mt/args.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"

namespace mentat::mt {
namespace {

using namespace std::chrono_literals;

std::mutex out_mu;  // lines of several allocations never interleave mid-line

// Streams one allocation's log to stdout, each line prefixed when `prefix` is set. Returns
// when the log ends (without follow), or, with follow, when `stop` is set or the allocation
// is gone.
Status StreamOne(ApiClient& server, const ClientOptions& co, const LogsFlags& f,
                 std::optional<int64_t> since_ms, const std::string& ns, const std::string& alloc,
                 const std::string& prefix, const std::atomic<bool>& stop) {
  int64_t next = -1;    // the byte to resume from; -1 until the agent has said where we are
  std::string partial;  // a line not yet ended
  bool printed_any = false;
  while (!stop) {
    auto address = AgentAddress(server, ns, alloc);
    if (!address) {
      if (address.error().code() == Code::kNotFound && printed_any) return {};  // it is gone
      if (!f.follow || address.error().code() != Code::kUnavailable) {
        return std::unexpected(address.error());
      }
      std::this_thread::sleep_for(500ms);  // placement or agent pending: poll for it
      continue;
    }
    auto agent = ApiClient::Create(*address, co);
    if (!agent) return std::unexpected(agent.error());
    std::string path = "/v1/allocations/" + alloc + "/logs?namespace=" + ns +
                       "&stream=" + (f.stderr_ ? "stderr" : "stdout");
    if (f.follow) path += "&follow=true";
    if (next >= 0) {
      path += "&offset=" + std::to_string(next);
    } else {
      if (since_ms) path += "&since=" + std::to_string(*since_ms);
      if (f.tail >= 0) path += "&tail=" + std::to_string(f.tail);
    }
    std::map<std::string, std::string> headers;
    int64_t received = 0;
    auto st = (*agent)->GetStream(
        path,
        [&](const char* d, size_t n) {
          received += static_cast<int64_t>(n);
          partial.append(d, n);
          size_t nl;
          std::lock_guard<std::mutex> lock(out_mu);
          while ((nl = partial.find('\n')) != std::string::npos) {
            std::cout << prefix << partial.substr(0, nl + 1);
            partial.erase(0, nl + 1);
            printed_any = true;
          }
          std::cout.flush();
          return !stop.load();
        },
        &stop, &headers);
    if (headers.count("X-Log-Start")) next = std::stoll(headers["X-Log-Start"]) + received;
    if (!st) {
      if (!f.follow || st.error().code() == Code::kUnauthenticated ||
          st.error().code() == Code::kForbidden) {
        return st;
      }
    }
    if (!f.follow) break;
    std::this_thread::sleep_for(500ms);  // the agent or its node went away: reconnect
  }
  if (!partial.empty()) {
    std::lock_guard<std::mutex> lock(out_mu);
    std::cout << prefix << partial << "\n";
  }
  return {};
}

}  // namespace

int RunLogs(ApiClient& client, const ClientOptions& co, const LogsFlags& f) {
  std::optional<int64_t> since_ms;
  if (!f.since.empty()) {
    // Sent as Unix milliseconds: "5m" means 5 minutes before now on this machine's clock.
    auto ago = ParseDuration(f.since);
    int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    since_ms = ago ? std::optional<int64_t>(now_ms - ago->count()) : ParseRfc3339Millis(f.since);
    if (!since_ms) {
      return UsageError("--since must be a duration (30s, 5m, 1h) or an RFC 3339 time "
                        "(2026-11-22T06:20:48Z), got \"" + f.since + "\"");
    }
  }
  RequestOptions ro;
  ro.ns = f.ns;
  // NAME is an allocation, or else a service whose allocations are followed together.
  std::vector<std::string> allocs;
  bool service = false;
  auto a = client.Get("allocations", f.name, ro);
  if (a) {
    allocs.push_back(f.name);
  } else if (a.error().code() == Code::kNotFound) {
    auto svc = client.Get("services", f.name, ro);
    if (!svc) {
      return PrintError(Error(Code::kNotFound, "no allocation or service named \"" + f.name +
                                                   "\" in namespace " + f.ns));
    }
    service = true;
    RequestOptions sel = ro;
    sel.label_selector = std::string(kLabelService) + "=" + f.name;
    auto list = client.List("allocations", sel);
    if (!list) return PrintError(list.error());
    for (const auto& item : (*list)["items"]) allocs.push_back(NameOf(item));
  } else {
    return PrintError(a.error());
  }
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> started;
  std::vector<std::thread> threads;
  std::optional<Error> failure;
  auto follow = [&](const std::string& alloc) {
    std::lock_guard<std::mutex> lock(mu);
    if (!started.insert(alloc).second) return;
    std::string prefix = service ? "[" + alloc + "] " : "";
    threads.emplace_back([&, alloc, prefix] {
      auto st = StreamOne(client, co, f, since_ms, f.ns, alloc, prefix, stop);
      if (!st) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = st.error();
      }
    });
  };
  for (const auto& alloc : allocs) follow(alloc);
  if (service && f.follow) {
    // New allocations of the service (a scale-up, a replacement) join as they appear.
    RequestOptions sel = ro;
    sel.label_selector = std::string(kLabelService) + "=" + f.name;
    auto st = client.Watch("allocations", 0, sel, [&](const Json& ev) {
      if (ev.value("type", "") == "ADDED") follow(NameOf(ev["object"]));
      return true;
    });
    if (!st) {
      stop = true;
      for (auto& t : threads) t.join();
      return PrintError(st.error());
    }
  }
  for (size_t i = 0;; ++i) {
    std::thread t;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (i >= threads.size()) break;
      t = std::move(threads[i]);
    }
    t.join();
  }
  if (failure) return PrintError(*failure);
  return kExitOk;
}

}  // namespace mentat::mt
