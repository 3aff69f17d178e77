#include "bench/start_peers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

namespace mentat::bench {
namespace {

namespace fs = std::filesystem;

std::string Exe(int pid) {
  char buf[512];
  ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  buf[n] = 0;
  return buf;
}

// Children of every thread of `pid` (runc is multi-threaded: a child is listed under the
// thread that forked it).
std::vector<int> Children(int pid) {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(t.path() / "children");
    for (int c; f >> c;) out.push_back(c);
  }
  return out;
}

}  // namespace

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

pid_t Spawn(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  return pid;
}

int FindBusybox(int root) {
  std::vector<int> todo = {root};
  while (!todo.empty()) {
    int p = todo.back();
    todo.pop_back();
    if (Exe(p).ends_with("/busybox")) return p;
    for (int c : Children(p)) todo.push_back(c);
  }
  return 0;
}

int WaitForBusybox(int root) {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    if (int p = FindBusybox(root)) return p;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return 0;
}

std::vector<double> TimeBwrap(const std::string& root, int runs, const std::vector<std::string>& flags) {
  std::vector<double> ms;
  if (access("/usr/bin/bwrap", X_OK) != 0) return ms;
  std::vector<std::string> argv = {"/usr/bin/bwrap"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"--bind", root, "/", "--proc", "/proc", "--dev", "/dev", "/bin/sleep", "3600"});
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    pid_t pid = Spawn(argv);
    if (!WaitForBusybox(pid)) {
      fprintf(stderr, "bwrap never ran the workload\n");
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return {};
    }
    ms.push_back(Ms(t0, Clock::now()));
    // The whole tree, not only the outer bwrap: its PID 1 (--die-with-parent) has been seen to
    // outlive it for seconds, and its workload would be taken for the next tool's.
    std::vector<int> tree = {pid};
    for (size_t k = 0; k < tree.size(); ++k) {
      for (int c : Children(tree[k])) tree.push_back(c);
    }
    for (auto it = tree.rbegin(); it != tree.rend(); ++it) kill(*it, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  return ms;
}

std::vector<double> TimeRunc(const std::string& root, const std::string& dir, int runs) {
  std::vector<double> ms;
  if (access("/usr/sbin/runc", X_OK) != 0) return ms;
  std::string bundle = dir + "/runc-bundle";
  fs::create_directories(bundle);
  fs::remove(bundle + "/config.json");  // runc spec refuses to overwrite one
  std::string cmd = "cd " + bundle + " && /usr/sbin/runc spec";
  if (system(cmd.c_str()) != 0) return ms;
  auto spec = nlohmann::json::parse(std::ifstream(bundle + "/config.json"), nullptr, false);
  spec["process"]["terminal"] = false;
  spec["process"]["args"] = {"/bin/sleep", "3600"};
  spec["root"]["path"] = root;
  spec["root"]["readonly"] = true;
  std::ofstream(bundle + "/config.json") << spec.dump(2);
  for (int i = 0; i < runs; ++i) {
    std::string id = "mentat-bench-" + std::to_string(getpid()) + "-" + std::to_string(i);
    auto t0 = Clock::now();
    pid_t pid = Spawn({"/usr/sbin/runc", "run", "--bundle", bundle, id});
    bool ran = WaitForBusybox(pid) != 0;
    if (ran) ms.push_back(Ms(t0, Clock::now()));
    system(("/usr/sbin/runc kill " + id + " KILL >/dev/null 2>&1").c_str());
    waitpid(pid, nullptr, 0);
    system(("/usr/sbin/runc delete -f " + id + " >/dev/null 2>&1").c_str());
    if (!ran) {
      fprintf(stderr, "runc never ran the workload\n");
      return {};
    }
  }
  return ms;
}

}  // namespace mentat::bench
