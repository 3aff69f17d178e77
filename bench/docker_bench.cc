// apply -> Running latency of a one-replica docker service (busybox `sleep`) through the whole
// stack (HTTP PUT, controller, scheduler, agent watch, the Engine API's create + start +
// inspect, status write, rollup), observed on a watch stream. The peer, measured in the same
// run and interleaved: a plain `docker run -d` of the same image and command (the CLI returns
// once the container has started). Target: Mentat <= 1.2x docker run (p50).
//
//   bazel build //bench:docker_bench && TEST_SRCDIR=$PWD/bazel-bin/bench/docker_bench.runfiles \
//     TEST_WORKSPACE=mentat ./bazel-bin/bench/docker_bench [runs]
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "bench/dev_stack.h"
#include "e2e/harness.h"

using namespace mentat;
using namespace mentat::e2e;
using Clock = std::chrono::steady_clock;

namespace {

const std::vector<std::string> kDocker = {"/usr/bin/env", "PATH=/usr/local/bin:/usr/bin:/bin", "docker"};

CommandResult Docker(std::vector<std::string> args) {
  std::vector<std::string> argv = kDocker;
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 15;
  auto up = RunCommand({Runfile("scripts/dockerd.sh")});
  if (up.exit_code != 0) {
    fprintf(stderr, "dockerd is not usable: %s%s\n", up.out.c_str(), up.err.c_str());
    return 1;
  }
  std::string dir = TempDir("docker-bench");
  auto stack = bench::DevStack::Start(dir, {"--node-name", "docker-bench"});
  if (!stack) return 1;
  auto& client = stack->client();

  std::vector<double> mentat_ms, docker_ms;
  for (int i = 0; i < runs; ++i) {
    std::string name = "dbench-" + std::to_string(i);
    std::string body = "name: " + name + "\ndriver: docker\nimage: local/busybox:1\ncommand: /bin/sleep\n"
                       "args: [\"3600\"]\n";
    auto t0 = Clock::now();
    auto put = client.Put("services", name, body);
    if (!put) {
      fprintf(stderr, "apply failed: %s\n", put.error().ToString().c_str());
      return 1;
    }
    auto ready = stack->AwaitReady(name, std::chrono::seconds(30));
    if (!ready) {
      fprintf(stderr, "%s did not run within 30 s\n%s\n", name.c_str(), stack->Log().c_str());
      return 1;
    }
    mentat_ms.push_back(std::chrono::duration<double, std::milli>(*ready - t0).count());
    client.Delete("services", name);

    std::string peer = "docker-bench-peer-" + std::to_string(getpid()) + "-" + std::to_string(i);
    auto t1 = Clock::now();
    auto run = Docker({"run", "-d", "--init", "--name", peer, "local/busybox:1", "/bin/sleep", "3600"});
    docker_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
    if (run.exit_code != 0) {
      fprintf(stderr, "docker run failed: %s\n", run.err.c_str());
      return 1;
    }
    Docker({"rm", "-f", peer});
    // The next run starts with the previous service's container gone.
    WaitFor([&] { return Docker({"ps", "-aq", "--filter", "label=mentat.service=" + name}).out.empty(); },
            std::chrono::seconds(30));
  }

  double m50 = Percentile(mentat_ms, 0.5), m90 = Percentile(mentat_ms, 0.9);
  double d50 = Percentile(docker_ms, 0.5), d90 = Percentile(docker_ms, 0.9);
  printf("apply -> Running, one-replica docker service (busybox sleep), %d runs (target: <= 1.2x docker run)\n", runs);
  printf("%-34s %10s %10s\n", "", "p50 ms", "p90 ms");
  printf("%-34s %10.1f %10.1f\n", "mentat apply -> Running", m50, m90);
  printf("%-34s %10.1f %10.1f\n", "peer: docker run -d (same image)", d50, d90);
  printf("%-34s %10.2fx %9.2fx\n", "ratio mentat / docker run", m50 / d50, m90 / d90);
  return 0;
}
