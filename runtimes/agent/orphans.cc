#include "runtimes/agent/orphans.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <spdlog/spdlog.h>

namespace mentat {
namespace {

int ParentOf(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("PPid:", 0) == 0) return std::atoi(line.c_str() + 5);
  }
  return 0;
}

// Whether `pid` is `ancestor` or runs under it: the workload of a namespaced task is a child (or
// grandchild) of the recorded PID 1 and carries the same task id.
bool DescendsFrom(int pid, int ancestor) {
  for (int depth = 0; pid > 1 && depth < 64; ++depth) {
    if (pid == ancestor) return true;
    pid = ParentOf(pid);
  }
  return false;
}

}  // namespace

int KillUnrecordedProcesses(const std::string& task_id, int keep_pid) {
  const std::string needle = std::string(kTaskIdEnv) + "=" + task_id;
  int killed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    int pid = std::stoi(name);
    if (pid == keep_pid || pid == getpid()) continue;
    std::ifstream f(entry.path() / "environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // Whole entries only: NUL-separated, so "...=web-1" never matches "...=web-10".
    bool found = false;
    for (size_t at = 0; at < env.size();) {
      size_t end = env.find('\0', at);
      if (end == std::string::npos) end = env.size();
      if (env.compare(at, end - at, needle) == 0) {
        found = true;
        break;
      }
      at = end + 1;
    }
    if (!found) continue;
    if (keep_pid > 0 && DescendsFrom(pid, keep_pid)) continue;
    // The driver makes each task a process group leader; take its group too.
    if (getpgid(pid) == pid) ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    spdlog::warn("agent: killed pid {} of task {}: started before a crash, never recorded", pid, task_id);
    ++killed;
  }
  return killed;
}

}  // namespace mentat
