// hull's start latency, `hull run` until the workload has exec'd, against bubblewrap and runc
// on the same busybox root filesystem, measured in the same run; and the static binary's size.
//
// hull runs with every layer of part 1 on: PID, mount, UTS, IPC, cgroup and network namespaces
// (network "none": lo only), the rootfs bound and pivot_root'ed, a fresh /proc, a minimal /dev,
// a v1 (or v2) cgroup with memory, cpu and pids limits, no capabilities, no_new_privs, Landlock,
// the default seccomp profile, sandbox-init as PID 1. The static //cmd/hull (the binary hull
// ships as; the target is its p50) and the dynamic development build //cmd/hull:hull_dynamic
// are timed. bwrap gets the comparable flags (PID, IPC, UTS and network
// namespaces, a bound root, /proc, /dev, all capabilities dropped, a new session); runc its
// default spec (which has all these namespaces, its own seccomp profile, and a cgroup).
//
// The workload is busybox sleep; "exec'd" is the moment a process of this bench's tree runs
// busybox (this bench is a child subreaper, so the container, which `hull run` leaves behind,
// stays in its tree). "returned" is when `hull run` itself exits: it waits for the exec.
//
//   bazel run //bench:hull_bench -- [runs]
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/start_peers.h"
#include "e2e/harness.h"
#include "runtimes/sandbox/sandbox_testing.h"

using namespace mentat;
using bench::Clock;
using bench::Ms;

namespace {

struct HullTimes {
  std::vector<double> exec_ms, return_ms;
  int leftovers = 0;  // an earlier workload (any tool's) found alive, and killed, before a run
};

// Reaps every exited child (containers whose PID 1 this subreaper inherited).
void ReapAll() {
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// `runs` starts of `hull run`, each timed to the workload's exec and to hull's own exit, then
// killed with `hull kill`. Empty on a failure (printed).
HullTimes TimeHull(const std::string& hull, const std::string& root, const std::string& dir, int runs,
                   const std::string& tag) {
  HullTimes t;
  const std::string state = dir + "/state-" + tag;
  setenv("HULL_STATE_DIR", state.c_str(), 1);
  for (int i = 0; i < runs; ++i) {
    std::string name = tag + "-" + std::to_string(i);
    nlohmann::json m = {{"name", name},
                        {"rootfs", root},
                        {"argv", {"/bin/sleep", "3600"}},
                        {"network", "none"},
                        {"profile", "default"},
                        {"limits", {{"memory_mb", 64}, {"cpu", 0.5}, {"pids", 64}}}};
    std::string path = dir + "/" + name + ".json";
    std::ofstream(path) << m.dump();
    // Nothing of an earlier container (ours, or bwrap's and runc's, whose PID 1 this subreaper
    // inherits too) may still run busybox, or its exec would be taken for this one's.
    ReapAll();
    if (!e2e::WaitFor([] { return bench::FindBusybox(getpid()) == 0; }, std::chrono::seconds(2),
                      std::chrono::milliseconds(1))) {
      // Say which, count it, and end it: a lagging teardown must not stop the whole bench.
      if (int left = bench::FindBusybox(getpid())) {
        std::ifstream status("/proc/" + std::to_string(left) + "/status");
        std::string line, ppid, parent_name;
        while (std::getline(status, line)) {
          if (line.rfind("PPid:", 0) == 0) ppid = line.substr(line.find_first_not_of(" \t", 5));
        }
        std::ifstream("/proc/" + ppid + "/comm") >> parent_name;
        fprintf(stderr, "%s: run %d: an earlier workload (pid %d, parent %s %s) still ran: killed\n", tag.c_str(), i,
                left, ppid.c_str(), parent_name.c_str());
        ++t.leftovers;
      }
      if (!e2e::WaitFor([] {
            ReapAll();
            if (int p = bench::FindBusybox(getpid())) ::kill(p, SIGKILL);
            return bench::FindBusybox(getpid()) == 0;
          },
          std::chrono::seconds(5), std::chrono::milliseconds(1))) {
        fprintf(stderr, "%s: run %d: an earlier workload survives SIGKILL\n", tag.c_str(), i);
        return {};
      }
    }
    auto t0 = Clock::now();
    pid_t pid = bench::Spawn({hull, "run", path});
    Clock::time_point exec_at{}, return_at{};
    int status = 0;
    auto deadline = t0 + std::chrono::seconds(10);
    while ((exec_at == Clock::time_point{} || return_at == Clock::time_point{}) && Clock::now() < deadline) {
      if (return_at == Clock::time_point{} && waitpid(pid, &status, WNOHANG) == pid) {
        return_at = Clock::now();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) break;
      }
      if (exec_at == Clock::time_point{} && bench::FindBusybox(getpid())) exec_at = Clock::now();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    if (exec_at == Clock::time_point{} || return_at == Clock::time_point{}) {
      fprintf(stderr, "%s: run %d: the workload never ran (hull status %d)\n", tag.c_str(), i, status);
      return {};
    }
    t.exec_ms.push_back(Ms(t0, exec_at));
    t.return_ms.push_back(Ms(t0, return_at));
    pid_t k = bench::Spawn({hull, "kill", name});
    waitpid(k, nullptr, 0);
  }
  // Records the exits (and removes the cgroups) of the killed containers.
  pid_t ps = bench::Spawn({hull, "ps", "-a"});
  waitpid(ps, nullptr, 0);
  return t;
}

void Row(const char* what, const std::vector<double>& ms) {
  printf("%-44s %10.2f %10.2f\n", what, e2e::Percentile(ms, 0.5), e2e::Percentile(ms, 0.99));
}

void Ratio(const char* what, const std::vector<double>& a, const std::vector<double>& b, const char* target) {
  if (a.empty() || b.empty()) return;
  printf("%-44s %9.2fx %9.2fx   %s\n", what, e2e::Percentile(a, 0.5) / e2e::Percentile(b, 0.5),
         e2e::Percentile(a, 0.99) / e2e::Percentile(b, 0.99), target);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  std::string dir = e2e::TempDir("hull-bench");
  setenv("TEST_TMPDIR", dir.c_str(), 1);
  const std::string root = BusyboxRoot();
  const std::string hull = e2e::Runfile("cmd/hull/hull");
  const std::string hull_dynamic = e2e::Runfile("cmd/hull/hull_dynamic");
  setenv("MENTAT_SANDBOX_INIT", e2e::Runfile("cmd/sandbox-init/sandbox-init").c_str(), 1);
  // The containers `hull run` leaves behind become our children, so their exec is seen in our tree.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  // Interleaved in small blocks so that a busy moment of the (shared) machine hits all of them
  // alike (blocks of 25 let one noisy second decide a tool's p50).
  HullTimes stat, dyn;
  std::vector<double> bwrap_ms, runc_ms;
  const std::vector<std::string> bwrap_flags = {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                                                "--die-with-parent", "--new-session", "--cap-drop", "ALL"};
  const int block = std::min(runs, 5);
  for (int done = 0; done < runs; done += block) {
    int n = std::min(block, runs - done);
    auto s = TimeHull(hull, root, dir, n, "static" + std::to_string(done));
    auto d = TimeHull(hull_dynamic, root, dir, n, "dyn" + std::to_string(done));
    if (d.exec_ms.empty() || s.exec_ms.empty()) return 1;
    dyn.exec_ms.insert(dyn.exec_ms.end(), d.exec_ms.begin(), d.exec_ms.end());
    dyn.return_ms.insert(dyn.return_ms.end(), d.return_ms.begin(), d.return_ms.end());
    stat.exec_ms.insert(stat.exec_ms.end(), s.exec_ms.begin(), s.exec_ms.end());
    stat.return_ms.insert(stat.return_ms.end(), s.return_ms.begin(), s.return_ms.end());
    stat.leftovers += s.leftovers + d.leftovers;
    auto b = bench::TimeBwrap(root, n, bwrap_flags);
    bwrap_ms.insert(bwrap_ms.end(), b.begin(), b.end());
    auto r = bench::TimeRunc(root, dir, n);
    runc_ms.insert(runc_ms.end(), r.begin(), r.end());
  }

  printf("hull start, `hull run` -> workload exec'd, %d runs, busybox root\n", runs);
  printf("%-44s %10s %10s\n", "", "p50 ms", "p99 ms");
  Row("hull run (static, all layers)", stat.exec_ms);
  Row("  hull run returned", stat.return_ms);
  Row("hull_dynamic run (development build)", dyn.exec_ms);
  Row("  hull_dynamic run returned", dyn.return_ms);
  if (!bwrap_ms.empty()) Row("peer: bwrap", bwrap_ms);
  if (!runc_ms.empty()) Row("peer: runc run", runc_ms);
  Ratio("ratio hull / bwrap", stat.exec_ms, bwrap_ms, "(target p50 <= 1.0x)");
  Ratio("ratio hull_dynamic / bwrap", dyn.exec_ms, bwrap_ms, "");
  Ratio("ratio hull / runc", stat.exec_ms, runc_ms, "");
  auto size = std::filesystem::file_size(hull);
  if (stat.leftovers > 0) {
    printf("\nleftovers: %d time(s) an earlier workload still ran at a run's start and was killed (see stderr)\n",
           stat.leftovers);
  }
  printf("\nstatic binary: hull %ju bytes (%.2f MB; target <= 3 MB), hull_dynamic %ju bytes\n",
         static_cast<uintmax_t>(size), size / 1e6, static_cast<uintmax_t>(std::filesystem::file_size(hull_dynamic)));
  return 0;
}
