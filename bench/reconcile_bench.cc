// Issue 6's scale figures for the reconcile engine, on one dev server (store, controllers and
// the in-process agent in one process):
//   - N one-replica exec services (a sleeping process each) applied at once: the time until
//     every one is Ready (target for 1,000: < 60 s);
//   - with them running and nothing changing: the server's CPU over a quiet window (target
//     < 2% of one core);
//   - the server's memory per running allocation.
// The peer, in the same run: starting the same N processes with a bare fork+exec loop.
//
//   bazel run //bench:reconcile_bench -- [services=1000] [quiet_seconds=10]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "apis/client.h"
#include "e2e/harness.h"

using namespace mentat;
using namespace mentat::e2e;
using Clock = std::chrono::steady_clock;

namespace {

double BareStartAllSeconds(int n) {
  auto t0 = Clock::now();
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      setsid();
      execl("/bin/sleep", "sleep", "3600", nullptr);
      _exit(127);
    }
    pids.push_back(pid);
  }
  // Until every one has exec'd.
  for (pid_t pid : pids) {
    std::string exe = "/proc/" + std::to_string(pid) + "/exe";
    char buf[256];
    while (true) {
      ssize_t len = readlink(exe.c_str(), buf, sizeof(buf) - 1);
      if (len > 0 && std::string(buf, len).find("sleep") != std::string::npos) break;
    }
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  for (pid_t pid : pids) kill(pid, SIGKILL);
  for (pid_t pid : pids) waitpid(pid, nullptr, 0);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  int quiet = argc > 2 ? std::atoi(argv[2]) : 10;
  std::string dir = TempDir("reconcile-bench");
  int port = FreePort();
  std::string addr = "http://127.0.0.1:" + std::to_string(port);
  auto server = StartServer(port, dir + "/data", dir + "/server.log",
                            {"--dev", "--node-name", "bench", "--log-level", "warn"});
  if (!server) {
    std::fprintf(stderr, "server did not start: %s\n", ReadFile(dir + "/server.log").c_str());
    return 1;
  }
  auto client = ApiClient::Create(addr);
  if (!client) return 1;
  long rss_before = RssKb(server->pid());

  // Apply in batches of 100 documents per request (each one transaction).
  auto t0 = Clock::now();
  for (int start = 0; start < n; start += 100) {
    Json docs = Json::array();
    for (int i = start; i < std::min(n, start + 100); ++i) {
      docs.push_back({{"source", "bench.yaml"},
                      {"text", "name: s" + std::to_string(i) +
                                   "\ndriver: exec\ncommand: /bin/sleep\nargs: ['3600']\n"}});
    }
    auto r = (*client)->Apply(docs, false);
    if (!r) {
      std::fprintf(stderr, "apply: %s\n", r.error().ToString().c_str());
      return 1;
    }
  }
  double applied_s = std::chrono::duration<double>(Clock::now() - t0).count();
  int ready = 0;
  bool all = WaitFor([&] {
    auto list = (*client)->List("services");
    if (!list) return false;
    ready = 0;
    for (const auto& s : (*list)["items"]) ready += s.value("status", Json::object()).value("readyReplicas", 0) == 1;
    return ready == n;
  }, std::chrono::seconds(600), std::chrono::milliseconds(250));
  double ready_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!all) {
    std::fprintf(stderr, "only %d of %d services Ready after 600 s\n", ready, n);
    return 1;
  }

  // Quiet: every rollout has completed (min_healthy_time passed), nothing changes; heartbeats,
  // checks and log sampling go on.
  WaitFor([&] {
    auto list = (*client)->List("services");
    if (!list) return false;
    for (const auto& s : (*list)["items"]) {
      if (s.value("status", Json::object()).value("rollout", Json::object()).value("state", "") != "Complete") return false;
    }
    return true;
  }, std::chrono::seconds(120), std::chrono::milliseconds(500));
  double cpu0 = CpuSeconds(server->pid());
  auto q0 = Clock::now();
  WaitFor([] { return false; }, std::chrono::seconds(quiet), std::chrono::milliseconds(500));
  double idle_pct = 100 * (CpuSeconds(server->pid()) - cpu0) /
                    std::chrono::duration<double>(Clock::now() - q0).count();
  long rss_after = RssKb(server->pid());

  double bare_s = BareStartAllSeconds(n);

  std::printf("reconcile at scale: %d one-replica exec services applied at once\n", n);
  std::printf("                                          mentat     bare fork+exec   ratio\n");
  std::printf("all started/Ready, s                    %8.2f     %8.2f      %6.1fx\n", ready_s, bare_s,
              ready_s / bare_s);
  std::printf("  (of which the %d apply requests, s     %8.2f)\n", (n + 99) / 100, applied_s);
  std::printf("idle CPU with all running, %% of a core %8.2f   (target < 2)\n", idle_pct);
  std::printf("server RSS per allocation, KiB          %8.1f   (%ld KiB -> %ld KiB)\n",
              static_cast<double>(rss_after - rss_before) / n, rss_before, rss_after);

  // Clean up: every workload stopped by the agent.
  for (int i = 0; i < n; ++i) (*client)->Delete("services", "s" + std::to_string(i));
  WaitFor([&] {
    auto list = (*client)->List("allocations");
    return list && (*list)["items"].empty();
  }, std::chrono::seconds(300), std::chrono::milliseconds(500));
  return 0;
}
