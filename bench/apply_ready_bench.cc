// apply -> Ready latency of a one-replica exec service through the whole stack (HTTP PUT,
// normalization, RocksDB write, controller, scheduler, agent watch, fork/exec, status write,
// rollup), observed on a watch stream. The peer, measured in the same run: a bare fork+exec of
// the same program, until the kernel reports it exec'd. The ratio is what orchestration costs.
//
//   bazel run //bench:apply_ready_bench -- [runs]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "bench/dev_stack.h"
#include "e2e/harness.h"

using namespace mentat;
using namespace mentat::e2e;
using Clock = std::chrono::steady_clock;

namespace {

// Bare start: fork, exec /bin/sleep, wait until /proc/<pid>/exe is the new program.
double BareStartMs() {
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    execl("/bin/sleep", "sleep", "3600", nullptr);
    _exit(127);
  }
  std::string exe = "/proc/" + std::to_string(pid) + "/exe";
  char buf[256];
  while (true) {
    ssize_t n = readlink(exe.c_str(), buf, sizeof(buf) - 1);
    if (n > 0) {
      buf[n] = 0;
      if (std::string(buf).find("sleep") != std::string::npos) break;
    }
  }
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  std::string dir = TempDir("apply-ready-bench");
  auto stack = bench::DevStack::Start(dir);
  if (!stack) return 1;
  auto& client = stack->client();

  std::vector<double> mentat_ms, bare_ms;
  for (int i = 0; i < runs; ++i) {
    std::string name = "bench-" + std::to_string(i);
    std::string body = "name: " + name + "\ndriver: exec\ncommand: /bin/sleep\nargs: [\"3600\"]\n";
    auto t0 = Clock::now();
    auto put = client.Put("services", name, body);
    if (!put) {
      fprintf(stderr, "apply failed: %s\n", put.error().ToString().c_str());
      return 1;
    }
    auto ready = stack->AwaitReady(name, std::chrono::seconds(10));
    if (!ready) {
      fprintf(stderr, "%s did not become Ready in 10 s\n", name.c_str());
      return 1;
    }
    mentat_ms.push_back(std::chrono::duration<double, std::milli>(*ready - t0).count());
    client.Delete("services", name);
    bare_ms.push_back(BareStartMs());
  }

  double m50 = Percentile(mentat_ms, 0.5), m99 = Percentile(mentat_ms, 0.99);
  double b50 = Percentile(bare_ms, 0.5), b99 = Percentile(bare_ms, 0.99);
  printf("apply -> Ready, one-replica exec service, %d runs (target: p99 < 250 ms)\n", runs);
  printf("%-34s %10s %10s\n", "", "p50 ms", "p99 ms");
  printf("%-34s %10.2f %10.2f\n", "mentat apply -> Ready", m50, m99);
  printf("%-34s %10.2f %10.2f\n", "peer: bare fork+exec (same program)", b50, b99);
  printf("%-34s %10.1fx %9.1fx\n", "ratio mentat / bare", m50 / b50, m99 / b99);
  return 0;
}
