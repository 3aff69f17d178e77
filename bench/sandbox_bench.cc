// Sandbox start latency and memory overhead, against bubblewrap and runc on the same busybox
// root filesystem, measured in the same run.
//
// Start latency: from the call that starts the workload (SandboxDriver::Start; fork+exec of
// `bwrap ...`; fork+exec of `runc run ...`) until the workload (busybox sleep) has exec'd,
// seen as a descendant whose /proc/<pid>/exe is busybox. Every layer is on for Mentat: PID,
// mount, UTS and IPC namespaces, an overlayfs root and pivot_root, fresh /proc, minimal /dev,
// a cgroup with limits, no capabilities, no_new_privs, seccomp, Landlock, sandbox-init as
// PID 1. bwrap gets the comparable flags (PID, IPC and UTS namespaces, a bind-mounted root,
// /proc, /dev, all capabilities dropped, a new session); runc its default spec (with a network
// namespace too, and its own seccomp profile).
//
// Memory: the RSS of sandbox-init per sandbox, plus the growth of this process (the driver's
// bookkeeping) per sandbox, with 50 running.
//
//   bazel run //bench:sandbox_bench -- [runs]
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "bench/start_peers.h"
#include "e2e/harness.h"
#include "runtimes/sandbox/sandbox_driver.h"
#include "runtimes/sandbox/sandbox_testing.h"

using namespace mentat;
using bench::Clock;
using bench::Ms;
using bench::WaitForBusybox;
namespace fs = std::filesystem;

namespace {

int64_t RssKb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  setenv("TEST_TMPDIR", e2e::TempDir("sandbox-bench").c_str(), 1);
  std::string root = BusyboxRoot();
  std::string dir = std::string(getenv("TEST_TMPDIR"));
  spdlog::set_level(spdlog::level::warn);

  auto driver = SandboxDriver::Create({});
  if (!driver) {
    fprintf(stderr, "sandbox driver: %s\n", driver.error().ToString().c_str());
    return 1;
  }
  Json fp = (*driver)->Fingerprint();
  if (!fp.value("healthy", false)) {
    fprintf(stderr, "sandbox driver unusable: %s\n", fp.dump().c_str());
    return 1;
  }

  // Mentat.
  std::vector<double> mentat_ms, mentat_start_ms;
  for (int i = 0; i < runs; ++i) {
    TaskConfig c;
    c.id = "default.bench-" + std::to_string(i);
    c.command = "/bin/sleep";
    c.args = {"3600"};
    c.task_dir = dir + "/tasks/" + std::to_string(i);
    c.spec = {{"rootfs", root}, {"resources", {{"memory_mb", 64}, {"pids", 64}}}};
    auto t0 = Clock::now();
    auto h = (*driver)->Start(c);
    auto t_start = Clock::now();
    if (!h) {
      fprintf(stderr, "start: %s\n", h.error().ToString().c_str());
      return 1;
    }
    int init = h->state["pid"];
    if (!WaitForBusybox(init)) {
      fprintf(stderr, "the workload never ran\n");
      return 1;
    }
    mentat_ms.push_back(Ms(t0, Clock::now()));
    mentat_start_ms.push_back(Ms(t0, t_start));
    (*driver)->Stop(c.id, std::chrono::milliseconds(0), SIGKILL);
    (*driver)->Destroy(c.id, true);
  }

  // bubblewrap, and runc with the bundle its own `runc spec` makes.
  std::vector<double> bwrap_ms = bench::TimeBwrap(
      root, runs,
      {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--cap-drop", "ALL"});
  bool have_bwrap = !bwrap_ms.empty();
  std::vector<double> runc_ms = bench::TimeRunc(root, dir, runs);
  bool have_runc = !runc_ms.empty();

  // Memory with 50 running.
  const int kHeld = 50;
  int64_t self_before = RssKb(getpid());
  std::vector<int> inits;
  for (int i = 0; i < kHeld; ++i) {
    TaskConfig c;
    c.id = "default.held-" + std::to_string(i);
    c.command = "/bin/sleep";
    c.args = {"3600"};
    c.task_dir = dir + "/held/" + std::to_string(i);
    c.spec = {{"rootfs", root}};
    auto h = (*driver)->Start(c);
    if (!h) return 1;
    inits.push_back(h->state["pid"]);
  }
  int64_t init_rss = 0;
  for (int p : inits) init_rss += RssKb(p);
  int64_t self_after = RssKb(getpid());
  for (int i = 0; i < kHeld; ++i) (*driver)->Destroy("default.held-" + std::to_string(i), true);

  double m50 = e2e::Percentile(mentat_ms, 0.5), m99 = e2e::Percentile(mentat_ms, 0.99);
  printf("sandbox start, Start() -> workload exec'd, %d runs, busybox root\n", runs);
  printf("%-44s %10s %10s\n", "", "p50 ms", "p99 ms");
  printf("%-44s %10.2f %10.2f\n", "mentat sandbox (all layers)", m50, m99);
  printf("%-44s %10.2f %10.2f\n", "  of which Start() returned (init exec'd)", e2e::Percentile(mentat_start_ms, 0.5),
         e2e::Percentile(mentat_start_ms, 0.99));
  if (have_bwrap) {
    double b50 = e2e::Percentile(bwrap_ms, 0.5), b99 = e2e::Percentile(bwrap_ms, 0.99);
    printf("%-44s %10.2f %10.2f\n", "peer: bwrap", b50, b99);
    printf("%-44s %9.2fx %9.2fx   (target p50 <= 1.0x)\n", "ratio mentat / bwrap", m50 / b50, m99 / b99);
  }
  if (have_runc && !runc_ms.empty()) {
    double r50 = e2e::Percentile(runc_ms, 0.5), r99 = e2e::Percentile(runc_ms, 0.99);
    printf("%-44s %10.2f %10.2f\n", "peer: runc run", r50, r99);
    printf("%-44s %9.2fx %9.2fx   (target p50 <= 0.2x)\n", "ratio mentat / runc", m50 / r50, m99 / r99);
  }
  printf("\nmemory per sandbox, %d running (target <= 2048 KiB)\n", kHeld);
  printf("  sandbox-init RSS                    %8.1f KiB\n", static_cast<double>(init_rss) / kHeld);
  printf("  driver bookkeeping (RSS growth)     %8.1f KiB\n",
         static_cast<double>(std::max<int64_t>(0, self_after - self_before)) / kHeld);
  printf("  total                               %8.1f KiB\n",
         static_cast<double>(init_rss + std::max<int64_t>(0, self_after - self_before)) / kHeld);
  return 0;
}
