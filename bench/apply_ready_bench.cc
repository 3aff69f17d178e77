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
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "apis/client.h"
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
  int port = FreePort();
  std::string addr = "http://127.0.0.1:" + std::to_string(port);
  Process server({Runfile("cmd/mentat-server/mentat-server"), "--dev", "--listen",
                  "127.0.0.1:" + std::to_string(port), "--data-dir", dir + "/data",
                  "--log-level", "warn"},
                 dir + "/server.log");
  if (!WaitFor([&] { return HttpGet(port, "/healthz").first == 200; }, std::chrono::seconds(20))) {
    fprintf(stderr, "server did not start:\n%s\n", server.Log().c_str());
    return 1;
  }
  auto client = *ApiClient::Create(addr);
  auto watcher_client = *ApiClient::Create(addr);

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> ready_at;
  std::atomic<bool> stop{false};
  std::thread watch([&] {
    while (!stop) {
      watcher_client->Watch("services", 0, {}, [&](const Json& ev) {
        const Json& o = ev["object"];
        if (ev.value("type", "") != "MODIFIED") return true;
        if (o.value("status", Json::object()).value("readyReplicas", 0) >= 1) {
          std::lock_guard<std::mutex> lock(mu);
          ready_at.emplace(NameOf(o), Clock::now());
          cv.notify_all();
        }
        return !stop;
      }, &stop);
    }
  });
  // Let the watch subscribe before the first measurement.
  WaitFor([&] { return HttpGet(port, "/healthz").first == 200; }, std::chrono::seconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  std::vector<double> mentat_ms, bare_ms;
  for (int i = 0; i < runs; ++i) {
    std::string name = "bench-" + std::to_string(i);
    std::string body = "name: " + name + "\ndriver: exec\ncommand: /bin/sleep\nargs: [\"3600\"]\n";
    auto t0 = Clock::now();
    auto put = client->Put("services", name, body);
    if (!put) {
      fprintf(stderr, "apply failed: %s\n", put.error().ToString().c_str());
      return 1;
    }
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return ready_at.count(name) > 0; })) {
      fprintf(stderr, "%s did not become Ready in 10 s\n", name.c_str());
      return 1;
    }
    mentat_ms.push_back(std::chrono::duration<double, std::milli>(ready_at[name] - t0).count());
    lock.unlock();
    client->Delete("services", name);
    bare_ms.push_back(BareStartMs());
  }
  stop = true;
  watcher_client->CancelWatches();
  watch.join();

  double m50 = Percentile(mentat_ms, 0.5), m99 = Percentile(mentat_ms, 0.99);
  double b50 = Percentile(bare_ms, 0.5), b99 = Percentile(bare_ms, 0.99);
  printf("apply -> Ready, one-replica exec service, %d runs (target: p99 < 250 ms)\n", runs);
  printf("%-34s %10s %10s\n", "", "p50 ms", "p99 ms");
  printf("%-34s %10.2f %10.2f\n", "mentat apply -> Ready", m50, m99);
  printf("%-34s %10.2f %10.2f\n", "peer: bare fork+exec (same program)", b50, b99);
  printf("%-34s %10.1fx %9.1fx\n", "ratio mentat / bare", m50 / b50, m99 / b99);
  server.Signal(SIGTERM);
  server.Wait(std::chrono::seconds(10));
  // The benchmark's workloads were deleted; make sure no sleeper outlives the run.
  return 0;
}
